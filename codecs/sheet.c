/*
 * codecs/sheet.c -- parse, validate and write the set-up sheet (see sheet.h
 * and docs/setup-sheet.md).
 *
 * Parsing is one pass over the CSV records followed by a validation pass:
 *
 *   pass 1  record by record: magic line, comments, section lines, header
 *           rows, data rows. Each data row is checked on its own (id syntax,
 *           enums, numbers, lengths) and kept if its id is valid, even when
 *           another cell is bad, so that rows referring to it do not produce
 *           follow-on errors.
 *   pass 2  sort every kind by id (stable on line), report duplicates, check
 *           the operator count, resolve every reference with binary search.
 *
 * Errors never stop the parse (except an unreadable first line, or running
 * out of memory): each one is appended to sh->errors, up to max_errors.
 * A section whose header row is bad is skipped, and references to its kind
 * are not checked, again to avoid follow-on errors.
 *
 * Memory: entry arrays grow with sr_realloc; strings live in a chain of arena
 * blocks freed at once by sr_sheet_free. Allocation failure sets a sticky
 * flag (ctx.nomem) checked after every record; the parse then frees
 * everything and returns SR_ENOMEM.
 */
#include "codecs/sheet.h"

#include "codecs/csv.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    DEF_MAX_BYTES = 16 * 1024 * 1024,
    DEF_MAX_FIELD = 4096,
    DEF_MAX_ERRORS = 1000,
    MAX_FIELDS = 256, /* columns in one CSV record */
    MAX_COLS = 9,     /* columns of the widest section */
    ARENA_BLOCK = 8192,
};

/* ------------------------------------------------------------------------ */
/* Kinds, sections and columns                                               */

enum kind {
    K_OPERATOR, K_GATEWAY, K_APP, K_FACILITY, K_EQUIPMENT, K_DEVICE, K_DATAPOINT, K_GRANT, K_SGRANT, K_RETENTION, K_N
};
_Static_assert(SR_SHEET_S_GATEWAYS == 1 << K_GATEWAY && SR_SHEET_S_GRANTS == 1 << K_GRANT &&
                   SR_SHEET_S_STORE_GRANTS == 1 << K_SGRANT && SR_SHEET_S_RETENTION == 1 << K_RETENTION &&
                   SR_SHEET_S_ALL == (1 << K_N) - 1,
               "sr_sheet.sections bits follow enum kind");

static const char *const section_name[K_N] = {
    "operator", "gateways", "apps", "facilities", "equipment", "devices", "datapoints", "grants", "storegrants",
    "retention",
};
static const char *const kind_name[K_N] = {
    "operator", "gateway", "app", "facility", "equipment", "device", "data point", "grant", "store grant",
    "retention class",
};

typedef struct coldef {
    const char *name;
    int required; /* column must be in the header and the value non-empty */
} coldef;

enum { OP_ID, OP_NAME, OP_N };
enum { GW_ID, GW_NAME, GW_SECRET, GW_N };
enum { AP_ID, AP_NAME, AP_SECRET, AP_URL, AP_N };
enum { FA_ID, FA_NAME, FA_N };
enum { EQ_ID, EQ_FACILITY, EQ_NAME, EQ_N };
enum { DV_ID, DV_EQUIPMENT, DV_GATEWAY, DV_NAME, DV_N };
enum { DP_ID, DP_DEVICE, DP_NAME, DP_TYPE, DP_UNIT, DP_MIN, DP_MAX, DP_KIND, DP_RETENTION, DP_N };
enum { GR_APP, GR_DATAPOINT, GR_ACCESS, GR_N };
enum { SG_APP, SG_KIND, SG_TARGET, SG_ACCESS, SG_N };
enum { RT_CLASS, RT_DAYS, RT_N };

/* Table order is also the canonical column order of sr_sheet_write. */
static const coldef cols_op[OP_N] = {{"id", 1}, {"name", 0}};
static const coldef cols_gw[GW_N] = {{"id", 1}, {"name", 0}, {"secret", 0}};
static const coldef cols_ap[AP_N] = {{"id", 1}, {"name", 0}, {"secret", 0}, {"push_url", 0}};
static const coldef cols_fa[FA_N] = {{"id", 1}, {"name", 0}};
static const coldef cols_eq[EQ_N] = {{"id", 1}, {"facility", 1}, {"name", 0}};
static const coldef cols_dv[DV_N] = {{"id", 1}, {"equipment", 1}, {"gateway", 1}, {"name", 0}};
static const coldef cols_dp[DP_N] = {{"id", 1},   {"device", 1}, {"name", 0}, {"type", 1},
                                     {"unit", 0}, {"min", 0},    {"max", 0},  {"kind", 0},
                                     {"retention_class", 0}};
static const coldef cols_gr[GR_N] = {{"app", 1}, {"datapoint", 1}, {"access", 0}};
static const coldef cols_sg[SG_N] = {{"app", 1}, {"kind", 1}, {"target", 1}, {"access", 0}};
static const coldef cols_rt[RT_N] = {{"class", 1}, {"days", 1}};

static const struct {
    const coldef *c;
    size_t n;
} kind_cols[K_N] = {
    {cols_op, OP_N}, {cols_gw, GW_N}, {cols_ap, AP_N}, {cols_fa, FA_N},
    {cols_eq, EQ_N}, {cols_dv, DV_N}, {cols_dp, DP_N}, {cols_gr, GR_N}, {cols_sg, SG_N}, {cols_rt, RT_N},
};
_Static_assert((int)DP_N <= (int)MAX_COLS, "MAX_COLS is the widest section");

static const char *const type_names[] = {"number", "integer", "boolean", "string"};
static const char *const kind_names[] = {"measure", "control", "both"};
static const char *const access_names[] = {"", "read", "control", "both"};
static const char *const store_kind_names[] = {"documents", "files", "corrections", "alive"};
static const char *const store_access_names[] = {"", "read", "write", "read+write"};

const char *sr_store_access_names(int access)
{
    return access >= 1 && access <= 3 ? store_access_names[access] : "?";
}

const char *sr_dp_type_name(sr_dp_type t)
{
    return (unsigned)t < 4 ? type_names[t] : "?";
}
const char *sr_dp_kind_name(sr_dp_kind k)
{
    return (unsigned)k < 3 ? kind_names[k] : "?";
}
const char *sr_grant_access_name(sr_grant_access a)
{
    return (a >= SR_GRANT_READ && a <= SR_GRANT_BOTH) ? access_names[a] : "?";
}

/* Untyped view of one kind's array, so sorting and lookup are written once. */
typedef struct kview {
    void **base;
    size_t *n;
    size_t size;
} kview;

static kview kind_view(sr_sheet *sh, int k)
{
    switch (k) {
    case K_OPERATOR: return (kview){(void **)&sh->operators, &sh->n_operators, sizeof *sh->operators};
    case K_GATEWAY: return (kview){(void **)&sh->gateways, &sh->n_gateways, sizeof *sh->gateways};
    case K_APP: return (kview){(void **)&sh->apps, &sh->n_apps, sizeof *sh->apps};
    case K_FACILITY: return (kview){(void **)&sh->facilities, &sh->n_facilities, sizeof *sh->facilities};
    case K_EQUIPMENT: return (kview){(void **)&sh->equipment, &sh->n_equipment, sizeof *sh->equipment};
    case K_DEVICE: return (kview){(void **)&sh->devices, &sh->n_devices, sizeof *sh->devices};
    case K_DATAPOINT: return (kview){(void **)&sh->datapoints, &sh->n_datapoints, sizeof *sh->datapoints};
    case K_GRANT: return (kview){(void **)&sh->grants, &sh->n_grants, sizeof *sh->grants};
    case K_RETENTION: return (kview){(void **)&sh->retention, &sh->n_retention, sizeof *sh->retention};
    default: return (kview){(void **)&sh->store_grants, &sh->n_store_grants, sizeof *sh->store_grants};
    }
}

static const char *nz(const char *s) { return s ? s : ""; }

/* Sort key of an entry: k1 (id, or app for grants), k2 (datapoint for grants). */
typedef struct skey {
    const char *k1, *k2;
    size_t line;
    size_t idx;
} skey;

static skey entry_key(int k, const void *e, size_t idx)
{
    skey s = {"", "", 0, idx};
    switch (k) {
    case K_OPERATOR: s.k1 = ((const sr_sheet_operator *)e)->id; s.line = ((const sr_sheet_operator *)e)->line; break;
    case K_GATEWAY: s.k1 = ((const sr_sheet_gateway *)e)->id; s.line = ((const sr_sheet_gateway *)e)->line; break;
    case K_APP: s.k1 = ((const sr_sheet_app *)e)->id; s.line = ((const sr_sheet_app *)e)->line; break;
    case K_FACILITY: s.k1 = ((const sr_sheet_facility *)e)->id; s.line = ((const sr_sheet_facility *)e)->line; break;
    case K_EQUIPMENT: s.k1 = ((const sr_sheet_equipment *)e)->id; s.line = ((const sr_sheet_equipment *)e)->line; break;
    case K_DEVICE: s.k1 = ((const sr_sheet_device *)e)->id; s.line = ((const sr_sheet_device *)e)->line; break;
    case K_DATAPOINT: s.k1 = ((const sr_sheet_datapoint *)e)->id; s.line = ((const sr_sheet_datapoint *)e)->line; break;
    case K_GRANT: {
        const sr_sheet_grant *g = e;
        s.k1 = g->app;
        s.k2 = g->datapoint;
        s.line = g->line;
        break;
    }
    case K_RETENTION: s.k1 = ((const sr_sheet_retention *)e)->cls; s.line = ((const sr_sheet_retention *)e)->line; break;
    default: {
        const sr_sheet_store_grant *g = e;
        s.k1 = g->app;
        s.k2 = g->key;
        s.line = g->line;
    }
    }
    s.k1 = nz(s.k1);
    s.k2 = nz(s.k2);
    return s;
}

static int skey_cmp(const void *a, const void *b)
{
    const skey *x = a, *y = b;
    int c = strcmp(x->k1, y->k1);
    if (!c) c = strcmp(x->k2, y->k2);
    if (!c) c = (x->line > y->line) - (x->line < y->line);
    if (!c) c = (x->idx > y->idx) - (x->idx < y->idx);
    return c;
}

/* Sorted keys of n entries at base; NULL on allocation failure (n > 0). */
static skey *sorted_keys(int k, const void *base, size_t n, size_t size)
{
    skey *keys = sr_calloc(n ? n : 1, sizeof *keys);
    if (!keys) return NULL;
    for (size_t i = 0; i < n; i++) keys[i] = entry_key(k, (const char *)base + i * size, i);
    if (n > 1) qsort(keys, n, sizeof *keys, skey_cmp);
    return keys;
}

/* ------------------------------------------------------------------------ */
/* Parse context, arena, errors                                              */

struct sr_sheet_arena {
    sr_sheet_arena *next;
    size_t used, cap;
    char data[];
};

typedef struct val {
    const char *s;
    size_t len;
} val;

typedef struct ctx {
    sr_sheet *sh;
    size_t cap[K_N];
    size_t err_cap, max_errors;
    int nomem;
    int csv_bad, version_bad;
    int broken[K_N];       /* header of this kind was bad: its rows were skipped */
    size_t first_line[K_N]; /* line of the first [section] line of each kind */
    int cur;               /* section: -1 none yet, K_N skipping, else a kind */
    int need_header;
    size_t section_line;
    int map[MAX_FIELDS];   /* CSV column -> column index of cur, or -1 */
    size_t map_n;
    const char **ids[K_N]; /* pass 2: sorted ids of each kind */
} ctx;

static char *arena_dup(ctx *c, const char *s, size_t len)
{
    sr_sheet_arena *a = c->sh->arena;
    if (!a || a->cap - a->used < len + 1) {
        size_t cap = len + 1 > ARENA_BLOCK ? len + 1 : ARENA_BLOCK;
        a = sr_malloc(sizeof *a + cap);
        if (!a) {
            c->nomem = 1;
            return NULL;
        }
        a->next = c->sh->arena;
        a->used = 0;
        a->cap = cap;
        c->sh->arena = a;
    }
    char *p = a->data + a->used;
    if (len) memcpy(p, s, len);
    p[len] = 0;
    a->used += len + 1;
    return p;
}

static const char *vdup(ctx *c, val v) { return arena_dup(c, v.s, v.len); }

static void add_err(ctx *c, size_t line, const char *column, const char *fmt, ...)
{
    sr_sheet *sh = c->sh;
    if (c->nomem) return;
    if (sh->n_errors >= c->max_errors) {
        sh->errors_truncated = 1;
        return;
    }
    if (sh->n_errors == c->err_cap) {
        size_t cap = c->err_cap ? c->err_cap * 2 : 16;
        if (cap > c->max_errors) cap = c->max_errors;
        sr_sheet_error *e = sr_realloc(sh->errors, cap * sizeof *e);
        if (!e) {
            c->nomem = 1;
            return;
        }
        sh->errors = e;
        c->err_cap = cap;
    }
    sr_sheet_error *e = &sh->errors[sh->n_errors++];
    e->line = line;
    snprintf(e->column, sizeof e->column, "%s", column ? column : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
}

/* A value shortened for a message: at most 48 bytes, cut on a UTF-8
 * boundary, control characters replaced. Returns buf. */
static const char *shown(val v, char buf[64])
{
    size_t o = 0, i = 0;
    while (i < v.len && o < 48) {
        size_t n = sr__csv_utf8_seq((const uint8_t *)v.s + i, v.len - i);
        if (!n) n = 1;
        if ((unsigned char)v.s[i] < 0x20 || v.s[i] == 0x7f || (n == 1 && (unsigned char)v.s[i] >= 0x80)) {
            buf[o++] = '?';
        } else {
            memcpy(buf + o, v.s + i, n);
            o += n;
        }
        i += n;
    }
    if (i < v.len) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = 0;
    return buf;
}

static void *grow(ctx *c, int k)
{
    kview kv = kind_view(c->sh, k);
    if (*kv.n == c->cap[k]) {
        size_t cap = c->cap[k] ? c->cap[k] * 2 : 8;
        void *p = sr_realloc(*kv.base, cap * kv.size);
        if (!p) {
            c->nomem = 1;
            return NULL;
        }
        *kv.base = p;
        c->cap[k] = cap;
    }
    void *e = (char *)*kv.base + (*kv.n)++ * kv.size;
    memset(e, 0, kv.size);
    return e;
}

/* ------------------------------------------------------------------------ */
/* Cell checks                                                               */

static val trim(const char *s, size_t len)
{
    while (len && (s[0] == ' ' || s[0] == '\t')) s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
    return (val){s, len};
}

int sr_sheet_grant_matches(const char *pattern, const char *id)
{
    size_t n = strlen(pattern);
    if (n && pattern[n - 1] == '*') return strncmp(pattern, id, n - 1) == 0;
    return strcmp(pattern, id) == 0;
}

static int eq_nocase(val v, const char *lit)
{
    size_t n = strlen(lit);
    if (v.len != n) return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = v.s[i];
        if (ch >= 'A' && ch <= 'Z') ch = (char)(ch - 'A' + 'a');
        if (ch != lit[i]) return 0;
    }
    return 1;
}

static int check_id(ctx *c, size_t line, const char *col, val v)
{
    char b[64];
    if (sr_id_ok(v.s, v.len)) return 1;
    if (v.len) /* empty required values are reported once, by the caller */
        add_err(c, line, col, "invalid id \"%s\": use 1 to %d of A-Z a-z 0-9 _ . -", shown(v, b),
                SR_SHEET_ID_MAX);
    return 0;
}

/* Free text (names, units, secrets): bounded, no control characters. */
static int check_text(ctx *c, size_t line, const char *col, val v, size_t max)
{
    if (v.len > max) {
        add_err(c, line, col, "longer than %zu bytes", max);
        return 0;
    }
    for (size_t i = 0; i < v.len; i++) {
        unsigned char ch = (unsigned char)v.s[i];
        if (ch < 0x20 || ch == 0x7f) {
            add_err(c, line, col, "control character (0x%02X) not allowed", ch);
            return 0;
        }
    }
    return 1;
}

static void check_secret(ctx *c, size_t line, val v)
{
    if (!v.len) return; /* empty: keep the existing secret */
    if (v.len < SR_SHEET_SECRET_MIN)
        add_err(c, line, "secret", "secret too short: %zu bytes, at least %d needed (or leave empty to keep the current one)",
                v.len, SR_SHEET_SECRET_MIN);
    else check_text(c, line, "secret", v, SR_SHEET_SECRET_MAX);
}

static void check_url(ctx *c, size_t line, val v)
{
    char b[64];
    if (!v.len) return;
    if (!check_text(c, line, "push_url", v, SR_SHEET_URL_MAX)) return;
    size_t skip = 0;
    if (v.len >= 7 && eq_nocase((val){v.s, 7}, "http://")) skip = 7;
    else if (v.len >= 8 && eq_nocase((val){v.s, 8}, "https://")) skip = 8;
    if (!skip) {
        add_err(c, line, "push_url", "\"%s\" is not an http:// or https:// URL", shown(v, b));
        return;
    }
    if (skip == v.len || v.s[skip] == '/' || v.s[skip] == '?' || v.s[skip] == '#') {
        add_err(c, line, "push_url", "URL \"%s\" has no host", shown(v, b));
        return;
    }
    for (size_t i = 0; i < v.len; i++)
        if (v.s[i] == ' ') {
            add_err(c, line, "push_url", "URL \"%s\" contains a space", shown(v, b));
            return;
        }
}

/* Enum cell: empty gives dflt; else one of names[lo..n) (any case). */
static int parse_enum(ctx *c, size_t line, const char *col, val v, const char *const *names,
                      int lo, int n, int dflt, int *out)
{
    char b[64];
    *out = dflt;
    if (!v.len) return 1;
    for (int i = lo; i < n; i++)
        if (eq_nocase(v, names[i])) {
            *out = i;
            return 1;
        }
    char list[96] = "";
    for (int i = lo; i < n; i++) {
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%s", i > lo ? ", " : "", names[i]);
    }
    add_err(c, line, col, "\"%s\" is not one of: %s", shown(v, b), list);
    return 0;
}

/* Decimal number: [+-] digits [. digits] [e [+-] digits], finite. */
static int parse_number(ctx *c, size_t line, const char *col, val v, double *out)
{
    char b[64], tmp[64];
    size_t i = 0, digits = 0;
    int ok = v.len > 0 && v.len < sizeof tmp;
    if (ok && (v.s[i] == '+' || v.s[i] == '-')) i++;
    while (ok && i < v.len && v.s[i] >= '0' && v.s[i] <= '9') i++, digits++;
    if (ok && i < v.len && v.s[i] == '.') {
        i++;
        while (i < v.len && v.s[i] >= '0' && v.s[i] <= '9') i++, digits++;
    }
    if (!digits) ok = 0;
    if (ok && i < v.len && (v.s[i] == 'e' || v.s[i] == 'E')) {
        size_t ed = 0;
        i++;
        if (i < v.len && (v.s[i] == '+' || v.s[i] == '-')) i++;
        while (i < v.len && v.s[i] >= '0' && v.s[i] <= '9') i++, ed++;
        if (!ed) ok = 0;
    }
    if (!ok || i != v.len) {
        add_err(c, line, col, "\"%s\" is not a decimal number", shown(v, b));
        return 0;
    }
    memcpy(tmp, v.s, v.len);
    tmp[v.len] = 0;
    double d = strtod(tmp, NULL);
    if (!isfinite(d)) {
        add_err(c, line, col, "%s is out of range", tmp);
        return 0;
    }
    *out = d;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Rows                                                                      */

static void row_operator(ctx *c, size_t line, const val *v)
{
    int ok = check_id(c, line, "id", v[OP_ID]);
    check_text(c, line, "name", v[OP_NAME], SR_SHEET_NAME_MAX);
    if (!ok) return;
    sr_sheet_operator *e = grow(c, K_OPERATOR);
    if (!e) return;
    e->line = line;
    e->id = vdup(c, v[OP_ID]);
    e->name = vdup(c, v[OP_NAME]);
}

static void row_gateway(ctx *c, size_t line, const val *v)
{
    int ok = check_id(c, line, "id", v[GW_ID]);
    check_text(c, line, "name", v[GW_NAME], SR_SHEET_NAME_MAX);
    check_secret(c, line, v[GW_SECRET]);
    if (!ok) return;
    sr_sheet_gateway *e = grow(c, K_GATEWAY);
    if (!e) return;
    e->line = line;
    e->id = vdup(c, v[GW_ID]);
    e->name = vdup(c, v[GW_NAME]);
    e->secret = vdup(c, v[GW_SECRET]);
}

static void row_app(ctx *c, size_t line, const val *v)
{
    int ok = check_id(c, line, "id", v[AP_ID]);
    check_text(c, line, "name", v[AP_NAME], SR_SHEET_NAME_MAX);
    check_secret(c, line, v[AP_SECRET]);
    check_url(c, line, v[AP_URL]);
    if (!ok) return;
    sr_sheet_app *e = grow(c, K_APP);
    if (!e) return;
    e->line = line;
    e->id = vdup(c, v[AP_ID]);
    e->name = vdup(c, v[AP_NAME]);
    e->secret = vdup(c, v[AP_SECRET]);
    e->push_url = vdup(c, v[AP_URL]);
}

static void row_facility(ctx *c, size_t line, const val *v)
{
    int ok = check_id(c, line, "id", v[FA_ID]);
    check_text(c, line, "name", v[FA_NAME], SR_SHEET_NAME_MAX);
    if (!ok) return;
    sr_sheet_facility *e = grow(c, K_FACILITY);
    if (!e) return;
    e->line = line;
    e->id = vdup(c, v[FA_ID]);
    e->name = vdup(c, v[FA_NAME]);
}

/* References are not checked for syntax here: pass 2 reports any that does
 * not resolve, and a malformed id can never resolve. */
static void row_equipment(ctx *c, size_t line, const val *v)
{
    int ok = check_id(c, line, "id", v[EQ_ID]);
    check_text(c, line, "name", v[EQ_NAME], SR_SHEET_NAME_MAX);
    if (!ok) return;
    sr_sheet_equipment *e = grow(c, K_EQUIPMENT);
    if (!e) return;
    e->line = line;
    e->id = vdup(c, v[EQ_ID]);
    e->facility = vdup(c, v[EQ_FACILITY]);
    e->name = vdup(c, v[EQ_NAME]);
}

static void row_device(ctx *c, size_t line, const val *v)
{
    int ok = check_id(c, line, "id", v[DV_ID]);
    check_text(c, line, "name", v[DV_NAME], SR_SHEET_NAME_MAX);
    if (!ok) return;
    sr_sheet_device *e = grow(c, K_DEVICE);
    if (!e) return;
    e->line = line;
    e->id = vdup(c, v[DV_ID]);
    e->equipment = vdup(c, v[DV_EQUIPMENT]);
    e->gateway = vdup(c, v[DV_GATEWAY]);
    e->name = vdup(c, v[DV_NAME]);
}

static void row_datapoint(ctx *c, size_t line, const val *v)
{
    int ok = check_id(c, line, "id", v[DP_ID]);
    check_text(c, line, "name", v[DP_NAME], SR_SHEET_NAME_MAX);
    check_text(c, line, "unit", v[DP_UNIT], SR_SHEET_UNIT_MAX);
    int type = SR_DP_NUMBER, kind = SR_DP_MEASURE;
    int type_ok = v[DP_TYPE].len && parse_enum(c, line, "type", v[DP_TYPE], type_names, 0, 4, 0, &type);
    parse_enum(c, line, "kind", v[DP_KIND], kind_names, 0, 3, SR_DP_MEASURE, &kind);
    double lim[2] = {0, 0};
    int has[2] = {0, 0};
    static const char *const lim_col[2] = {"min", "max"};
    for (int i = 0; i < 2; i++) {
        val lv = v[DP_MIN + i];
        if (!lv.len) continue;
        if (!parse_number(c, line, lim_col[i], lv, &lim[i])) continue;
        if (type_ok && (type == SR_DP_BOOLEAN || type == SR_DP_STRING)) {
            add_err(c, line, lim_col[i], "a range is only allowed for number and integer data points");
            continue;
        }
        if (type_ok && type == SR_DP_INTEGER &&
            (lim[i] != floor(lim[i]) || fabs(lim[i]) > 9007199254740992.0)) {
            add_err(c, line, lim_col[i], "an integer data point needs a whole-number bound (|x| <= 2^53)");
            continue;
        }
        has[i] = 1;
    }
    if (has[0] && has[1] && lim[0] > lim[1]) {
        char a[40], b[40];
        snprintf(a, sizeof a, "%.17g", lim[0]);
        snprintf(b, sizeof b, "%.17g", lim[1]);
        add_err(c, line, "min", "min (%s) is greater than max (%s)", a, b);
    }
    /* the data class whose retention period keeps its values (docs/retention.md):
     * an id, never a reserved class (the engine refuses them too,
     * sr__retention_class_ok); empty: "default" */
    static const char *const reserved[] = {"audit", "message_ids", "documents", "files", "requests", "monitors"};
    val rv = v[DP_RETENTION];
    int res = 0;
    for (size_t i = 0; rv.len && i < sizeof reserved / sizeof *reserved; i++)
        res |= rv.len == strlen(reserved[i]) && !memcmp(rv.s, reserved[i], rv.len);
    if (rv.len && (!sr_id_ok(rv.s, rv.len) || res)) {
        add_err(c, line, "retention_class",
                "an id ([A-Za-z0-9._-], 1 to 64), not audit, message_ids, documents, files, requests nor monitors");
        ok = 0;
    }
    if (!ok) return;
    sr_sheet_datapoint *e = grow(c, K_DATAPOINT);
    if (!e) return;
    e->line = line;
    e->id = vdup(c, v[DP_ID]);
    e->device = vdup(c, v[DP_DEVICE]);
    e->name = vdup(c, v[DP_NAME]);
    e->unit = vdup(c, v[DP_UNIT]);
    e->retention_class = vdup(c, v[DP_RETENTION]);
    e->type = (sr_dp_type)type;
    e->kind = (sr_dp_kind)kind;
    e->has_min = has[0];
    e->has_max = has[1];
    e->min = has[0] ? lim[0] : 0;
    e->max = has[1] ? lim[1] : 0;
}

static void row_grant(ctx *c, size_t line, const val *v)
{
    char b[64];
    val dp = v[GR_DATAPOINT];
    int is_prefix = dp.len && dp.s[dp.len - 1] == '*';
    int ok = dp.len > 0;
    if (is_prefix) {
        for (size_t i = 0; i + 1 < dp.len; i++)
            if (!sr_id_char[(unsigned char)dp.s[i]]) ok = 0;
        if (dp.len - 1 > SR_SHEET_ID_MAX) ok = 0;
        if (!ok)
            add_err(c, line, "datapoint", "invalid pattern \"%s\": an id prefix followed by one '*'",
                    shown(dp, b));
    }
    int access = SR_GRANT_BOTH;
    parse_enum(c, line, "access", v[GR_ACCESS], access_names, 1, 4, SR_GRANT_BOTH, &access);
    if (!ok || !v[GR_APP].len) return;
    sr_sheet_grant *e = grow(c, K_GRANT);
    if (!e) return;
    e->line = line;
    e->app = vdup(c, v[GR_APP]);
    e->datapoint = vdup(c, dp);
    e->is_prefix = is_prefix;
    e->access = (sr_grant_access)access;
}

static void row_store_grant(ctx *c, size_t line, const val *v)
{
    char b[64];
    int kind = 0, access = 1;
    int ok = parse_enum(c, line, "kind", v[SG_KIND], store_kind_names, 0, 4, -1, &kind) && v[SG_KIND].len;
    ok &= parse_enum(c, line, "access", v[SG_ACCESS], store_access_names, 1, 4, 1, &access);
    const char *target = vdup(c, v[SG_TARGET]);
    if (ok && target && !sr_store_pattern_ok(kind == 1, target)) {
        ok = 0;
        if (kind == 1)
            add_err(c, line, "target",
                    "\"%s\" is not a path prefix (segments of [A-Za-z0-9._-] separated by '/', at most %d bytes), "
                    "optionally ending in '*', or '*'",
                    shown(v[SG_TARGET], b), SR_STORE_PREFIX_MAX);
        else
            add_err(c, line, "target", "\"%s\" is not a %s id, optionally ending in '*', or '*'",
                    shown(v[SG_TARGET], b), kind == 2 ? "data point" : kind == 3 ? "gateway" : "collection");
    }
    if (!ok || !target || !v[SG_APP].len) return;
    sr_sheet_store_grant *e = grow(c, K_SGRANT);
    if (!e) return;
    char kb[16 + SR_STORE_PREFIX_MAX + 2];
    int kn = snprintf(kb, sizeof kb, "%s:%s", store_kind_names[kind], target);
    char *key = arena_dup(c, kb, (size_t)kn);
    if (!key) return;
    e->line = line;
    e->app = vdup(c, v[SG_APP]);
    e->kind = store_kind_names[kind];
    e->target = target;
    e->access = access;
    e->key = key;
}

/* An operator's period of one class (docs/setup-sheet.md [retention]): the
 * class an id, not message_ids (the platform's window); days a whole number
 * from 0 (for ever) to SR_SHEET_RETENTION_DAYS_MAX. The audit floor is the
 * importer's (it needs the configuration and the stored period). */
static void row_retention(ctx *c, size_t line, const val *v)
{
    char b[64];
    val cl = v[RT_CLASS], d = v[RT_DAYS];
    int ok = 1;
    if (cl.len && !sr_id_ok(cl.s, cl.len)) {
        add_err(c, line, "class",
                "invalid class \"%s\": default, audit, documents, files, requests, monitors or a data point's "
                "retention_class (1 to %d of A-Z a-z 0-9 _ . -)",
                shown(cl, b), SR_SHEET_ID_MAX);
        ok = 0;
    } else if (cl.len == 11 && !memcmp(cl.s, "message_ids", 11)) {
        add_err(c, line, "class",
                "message_ids is not an operator's class: the message-id window is the platform's [retention] "
                "message_id_window_s (configuration)");
        ok = 0;
    }
    unsigned long days = 0;
    if (d.len) {
        size_t i = 0;
        while (i < d.len && d.s[i] >= '0' && d.s[i] <= '9' && days <= SR_SHEET_RETENTION_DAYS_MAX)
            days = days * 10 + (unsigned long)(d.s[i++] - '0');
        if (i != d.len || days > SR_SHEET_RETENTION_DAYS_MAX) {
            add_err(c, line, "days", "\"%s\" is not a whole number of days from 0 (for ever) to %d", shown(d, b),
                    SR_SHEET_RETENTION_DAYS_MAX);
            ok = 0;
        }
    }
    if (!ok || !cl.len || !d.len) return;
    sr_sheet_retention *e = grow(c, K_RETENTION);
    if (!e) return;
    e->line = line;
    e->cls = vdup(c, cl);
    e->days = (unsigned)days;
}

typedef void (*row_fn)(ctx *, size_t, const val *);
static const row_fn row_fns[K_N] = {
    row_operator, row_gateway, row_app, row_facility, row_equipment, row_device, row_datapoint, row_grant,
    row_store_grant, row_retention,
};

static void on_row(ctx *c, const sr_csv_record *rec)
{
    char b[64];
    val v[MAX_COLS];
    memset(v, 0, sizeof v);
    if (c->cur < 0) {
        add_err(c, rec->line, "", "row before the first [section] line");
        return;
    }
    if (c->cur == K_N) return; /* skipping an unknown or broken section */
    const coldef *cols = kind_cols[c->cur].c;
    size_t ncols = kind_cols[c->cur].n;
    for (size_t i = 0; i < rec->n; i++) {
        val t = trim(rec->f[i].s, rec->f[i].len);
        if (i < c->map_n && c->map[i] >= 0) v[c->map[i]] = t;
        else if (t.len)
            add_err(c, rec->line, "", "value \"%s\" in column %zu, which has no header", shown(t, b), i + 1);
    }
    for (size_t i = 0; i < ncols; i++)
        if (cols[i].required && !v[i].len) add_err(c, rec->line, cols[i].name, "required value is empty");
    row_fns[c->cur](c, rec->line, v);
}

static void on_header(ctx *c, const sr_csv_record *rec)
{
    char b[64];
    int k = c->cur, bad = 0;
    const coldef *cols = kind_cols[k].c;
    size_t ncols = kind_cols[k].n;
    int seen[MAX_COLS] = {0};
    c->need_header = 0;
    c->map_n = rec->n;
    for (size_t i = 0; i < rec->n; i++) {
        val t = trim(rec->f[i].s, rec->f[i].len);
        c->map[i] = -1;
        if (!t.len) continue; /* spreadsheets pad rows with empty cells */
        size_t j = 0;
        while (j < ncols && !eq_nocase(t, cols[j].name)) j++;
        if (j == ncols) {
            char list[128] = "";
            for (size_t x = 0; x < ncols; x++) {
                size_t l = strlen(list);
                snprintf(list + l, sizeof list - l, "%s%s", x ? ", " : "", cols[x].name);
            }
            add_err(c, rec->line, shown(t, b), "unknown column in [%s] (known: %s)", section_name[k], list);
            bad = 1;
        } else if (seen[j]) {
            add_err(c, rec->line, cols[j].name, "column appears twice in the header");
            bad = 1;
        } else {
            seen[j] = 1;
            c->map[i] = (int)j;
        }
    }
    for (size_t j = 0; j < ncols; j++)
        if (cols[j].required && !seen[j]) {
            add_err(c, rec->line, cols[j].name, "required column missing from the header of [%s]",
                    section_name[k]);
            bad = 1;
        }
    if (bad) {
        c->broken[k] = 1;
        c->cur = K_N;
    }
}

static void end_section(ctx *c)
{
    if (c->need_header)
        add_err(c, c->section_line, "", "section [%s] has no header row", section_name[c->cur]);
    c->need_header = 0;
}

static void on_section(ctx *c, const sr_csv_record *rec, val name)
{
    char b[64];
    end_section(c);
    c->cur = K_N;
    for (size_t i = 1; i < rec->n; i++)
        if (trim(rec->f[i].s, rec->f[i].len).len) {
            add_err(c, rec->line, "", "text after the section name");
            break;
        }
    if (name.len < 2 || name.s[name.len - 1] != ']') {
        add_err(c, rec->line, "", "malformed section line \"%s\": expected [name]", shown(name, b));
        return;
    }
    val inner = trim(name.s + 1, name.len - 2);
    for (int k = 0; k < K_N; k++)
        if (eq_nocase(inner, section_name[k])) {
            c->cur = k;
            c->sh->sections |= 1u << k;
            c->need_header = 1;
            c->section_line = rec->line;
            if (!c->first_line[k]) c->first_line[k] = rec->line;
            return;
        }
    add_err(c, rec->line, "", "unknown section [%s] (known: operator, gateways, apps, facilities, "
                              "equipment, devices, datapoints, grants, storegrants, retention)", shown(inner, b));
}

/* First line: the magic. 1 if it is the v1 magic; else reports why. */
static int on_magic(ctx *c, const sr_csv_record *rec)
{
    char b[64];
    val t;
    if (rec->comment) {
        t = trim(rec->f[0].s, rec->f[0].len);
        while (t.len && (t.s[t.len - 1] == ',' || t.s[t.len - 1] == ' ' || t.s[t.len - 1] == '\t'))
            t.len--; /* a spreadsheet pads the line with empty cells */
    } else {
        t = trim(rec->f[0].s, rec->f[0].len);
        for (size_t i = 1; i < rec->n; i++)
            if (trim(rec->f[i].s, rec->f[i].len).len) t.len = 0;
    }
    static const char magic[] = SR_SHEET_MAGIC;
    static const char prefix[] = "#suiro-setup-sheet ";
    if (t.len == sizeof magic - 1 && !memcmp(t.s, magic, t.len)) return 1;
    if (t.len >= sizeof prefix - 1 && !memcmp(t.s, prefix, sizeof prefix - 1)) {
        val ver = trim(t.s + sizeof prefix - 1, t.len - (sizeof prefix - 1));
        add_err(c, rec->line, "", "unsupported sheet version \"%s\" (this reader knows v1)", shown(ver, b));
        c->version_bad = 1;
        return 0;
    }
    add_err(c, rec->line, "", "not a suiro set-up sheet: the first line must be \"%s\"", magic);
    c->csv_bad = 1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Pass 2                                                                    */

static int sort_kind(ctx *c, int k)
{
    kview kv = kind_view(c->sh, k);
    size_t n = *kv.n;
    int rc = SR_OK;
    skey *keys = NULL;
    char *tmp = NULL;
    if (n < 1) return SR_OK;
    keys = sorted_keys(k, *kv.base, n, kv.size);
    tmp = sr_malloc(n * kv.size);
    c->ids[k] = sr_malloc(n * sizeof *c->ids[k]);
    if (!keys || !tmp || !c->ids[k]) {
        rc = SR_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++) memcpy(tmp + i * kv.size, (char *)*kv.base + keys[i].idx * kv.size, kv.size);
    memcpy(*kv.base, tmp, n * kv.size);
    for (size_t i = 0; i < n; i++) {
        c->ids[k][i] = keys[i].k1;
        if (i && !strcmp(keys[i].k1, keys[i - 1].k1) && !strcmp(keys[i].k2, keys[i - 1].k2)) {
            if (k == K_GRANT || k == K_SGRANT)
                add_err(c, keys[i].line, k == K_GRANT ? "datapoint" : "target",
                        "duplicate grant of \"%s\" to app \"%s\" (first on line %zu)", keys[i].k2, keys[i].k1,
                        keys[i - 1].line);
            else if (k == K_RETENTION)
                add_err(c, keys[i].line, "class", "duplicate retention class \"%s\" (first on line %zu)", keys[i].k1,
                        keys[i - 1].line);
            else
                add_err(c, keys[i].line, k == K_GRANT ? "app" : "id", "duplicate %s id \"%s\" (first on line %zu)",
                        kind_name[k], keys[i].k1, keys[i - 1].line);
        }
    }
done:
    sr_free(keys);
    sr_free(tmp);
    return rc;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int exists(ctx *c, int k, const char *id)
{
    kview kv = kind_view(c->sh, k);
    if (!*kv.n) return 0;
    return bsearch(&id, c->ids[k], *kv.n, sizeof *c->ids[k], str_cmp) != NULL;
}

/* Check a reference from line/col to an entry of kind k. */
static void ref(ctx *c, size_t line, const char *col, int k, const char *id)
{
    char b[64];
    if (c->broken[k] || !*id) return; /* empty: already reported as required */
    if (!exists(c, k, id))
        add_err(c, line, col, "unknown %s \"%s\"", kind_name[k], shown((val){id, strlen(id)}, b));
}

static int prefix_matches_any(ctx *c, const char *pat, size_t plen)
{
    size_t n = c->sh->n_datapoints, lo = 0, hi = n;
    const char **ids = c->ids[K_DATAPOINT];
    while (lo < hi) { /* first id >= prefix */
        size_t mid = lo + (hi - lo) / 2;
        if (strncmp(ids[mid], pat, plen) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && !strncmp(ids[lo], pat, plen);
}

static void validate(ctx *c)
{
    sr_sheet *sh = c->sh;
    if (!c->broken[K_OPERATOR]) {
        if (sh->n_operators == 0)
            add_err(c, c->first_line[K_OPERATOR], "", "the sheet needs exactly one [operator] row; found none");
        for (size_t i = 1; i < sh->n_operators; i++) /* still in file order */
            add_err(c, sh->operators[i].line, "id", "only one operator row is allowed (first on line %zu)",
                    sh->operators[0].line);
    }
    for (int k = 0; k < K_N; k++)
        if (sort_kind(c, k)) {
            c->nomem = 1;
            return;
        }
    for (size_t i = 0; i < sh->n_equipment; i++)
        ref(c, sh->equipment[i].line, "facility", K_FACILITY, sh->equipment[i].facility);
    for (size_t i = 0; i < sh->n_devices; i++) {
        ref(c, sh->devices[i].line, "equipment", K_EQUIPMENT, sh->devices[i].equipment);
        ref(c, sh->devices[i].line, "gateway", K_GATEWAY, sh->devices[i].gateway);
    }
    for (size_t i = 0; i < sh->n_datapoints; i++)
        ref(c, sh->datapoints[i].line, "device", K_DEVICE, sh->datapoints[i].device);
    for (size_t i = 0; i < sh->n_grants; i++) {
        const sr_sheet_grant *g = &sh->grants[i];
        ref(c, g->line, "app", K_APP, g->app);
        if (c->broken[K_DATAPOINT]) continue;
        if (!g->is_prefix) ref(c, g->line, "datapoint", K_DATAPOINT, g->datapoint);
        else if (!prefix_matches_any(c, g->datapoint, strlen(g->datapoint) - 1))
            add_err(c, g->line, "datapoint", "pattern \"%s\" matches no data point", g->datapoint);
    }
    for (size_t i = 0; i < sh->n_store_grants; i++) ref(c, sh->store_grants[i].line, "app", K_APP, sh->store_grants[i].app);
}

/* Stable sort of the errors by line (insertion sort: at most max_errors). */
static void sort_errors(sr_sheet *sh)
{
    for (size_t i = 1; i < sh->n_errors; i++) {
        sr_sheet_error e = sh->errors[i];
        size_t j = i;
        while (j && sh->errors[j - 1].line > e.line) {
            sh->errors[j] = sh->errors[j - 1];
            j--;
        }
        sh->errors[j] = e;
    }
}

/* ------------------------------------------------------------------------ */
/* Public: parse, free                                                       */

void sr_sheet_free(sr_sheet *sh)
{
    if (!sh) return;
    for (int k = 0; k < K_N; k++) sr_free(*kind_view(sh, k).base);
    sr_free(sh->errors);
    sr_sheet_arena *a = sh->arena;
    while (a) {
        sr_sheet_arena *next = a->next;
        sr_free(a);
        a = next;
    }
    sr_free(sh);
}

int sr_sheet_parse(const void *data, size_t len, const sr_sheet_opts *opts, sr_sheet **out)
{
    int rc = SR_OK;
    sr_csv_reader rd;
    ctx c;
    memset(&c, 0, sizeof c);
    sr_csv_reader_init(&rd, NULL, 0, NULL);
    if (!out) return SR_EINVAL;
    *out = NULL;
    if (!data && len) return SR_EINVAL;
    sr_sheet_opts o = opts ? *opts : (sr_sheet_opts){0};
    if (!o.max_bytes) o.max_bytes = DEF_MAX_BYTES;
    if (!o.max_field) o.max_field = DEF_MAX_FIELD;
    if (!o.max_errors) o.max_errors = DEF_MAX_ERRORS;
    if (len > o.max_bytes) return SR_ETOOBIG;

    c.sh = sr_calloc(1, sizeof *c.sh);
    if (!c.sh) return SR_ENOMEM;
    c.max_errors = o.max_errors;
    c.cur = -1;
    sr_csv_opts co = {.max_field = o.max_field, .max_fields = MAX_FIELDS, .comment = '#'};
    co.max_record = o.max_field * 4 > 65536 ? o.max_field * 4 : 65536;
    sr_csv_reader_init(&rd, data, len, &co);

    int first = 1, identified = 0;
    for (;;) {
        sr_csv_record rec;
        size_t eline;
        int r = sr_csv_next(&rd, &rec);
        if (r == SR_DONE) {
            if (first) {
                add_err(&c, 1, "", "empty input: the first line must be \"" SR_SHEET_MAGIC "\"");
                c.csv_bad = 1;
            }
            break;
        }
        if (r == SR_ENOMEM) c.nomem = 1;
        if (c.nomem) break;
        if (r == SR_ECODEC) {
            const char *m = sr_csv_error(&rd, &eline);
            add_err(&c, eline, "", "CSV: %s", m);
            c.csv_bad = 1;
            if (first) break; /* the sheet cannot be identified */
            continue;
        }
        if (first) {
            first = 0;
            if (!on_magic(&c, &rec)) break;
            identified = 1;
            continue;
        }
        if (rec.comment) continue;
        val f0 = trim(rec.f[0].s, rec.f[0].len);
        if (f0.len && f0.s[0] == '#') continue; /* a comment cell written by a spreadsheet */
        int blank = 1;
        for (size_t i = 0; i < rec.n && blank; i++)
            if (trim(rec.f[i].s, rec.f[i].len).len) blank = 0;
        if (blank) continue;
        if (f0.len && f0.s[0] == '[') on_section(&c, &rec, f0);
        else if (c.need_header) on_header(&c, &rec);
        else on_row(&c, &rec);
        if (c.nomem) break;
    }
    if (!c.nomem && c.cur >= 0 && c.cur < K_N) end_section(&c);
    /* Cross-row checks only make sense once the sheet was identified. */
    if (!c.nomem && identified) validate(&c);
    if (c.nomem) {
        rc = SR_ENOMEM;
        goto done;
    }
    sort_errors(c.sh);
    if (c.version_bad) rc = SR_EVERSION;
    else if (c.csv_bad) rc = SR_ECODEC;
    else if (c.sh->n_errors) rc = SR_EINVAL;
    *out = c.sh;
    c.sh = NULL;
done:
    for (int k = 0; k < K_N; k++) sr_free(c.ids[k]);
    sr_csv_reader_release(&rd);
    sr_sheet_free(c.sh);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Public: write, equal                                                      */

static void fmt_num(double d, char buf[40])
{
    /* Whole numbers as plain digits; others in the shortest %g form that
     * reads back as the same double. */
    if (d == floor(d) && fabs(d) < 1e15) {
        snprintf(buf, 40, "%.0f", d);
        return;
    }
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, 40, "%.*g", p, d);
        if (strtod(buf, NULL) == d) return;
    }
}

static int write_kind(const sr_sheet *csh, int k, sr_buf *out)
{
    sr_sheet *sh = (sr_sheet *)csh; /* kind_view does not modify */
    kview kv = kind_view(sh, k);
    const coldef *cols = kind_cols[k].c;
    size_t ncols = kind_cols[k].n, n = *kv.n;
    sr_csv_field f[MAX_COLS];
    char num[2][40];
    int rc;
    skey *keys = NULL;
    char sect[32];

    if (k == K_RETENTION && !n) return SR_OK; /* written only when it has rows: older sheets re-export byte for byte */
    if (k == K_DATAPOINT) { /* retention_class, the last column: written when some data point has a class */
        int any = 0;
        for (size_t i = 0; i < n && !any; i++) {
            const char *rc2 = ((const sr_sheet_datapoint *)*kv.base)[i].retention_class;
            any = rc2 && rc2[0];
        }
        if (!any) ncols = DP_RETENTION;
    }
    snprintf(sect, sizeof sect, "[%s]", section_name[k]);
    f[0] = (sr_csv_field){sect, strlen(sect)};
    rc = sr_csv_write_record(out, f, 1, "\n");
    for (size_t i = 0; rc == SR_OK && i < ncols; i++) f[i] = (sr_csv_field){cols[i].name, strlen(cols[i].name)};
    if (rc == SR_OK) rc = sr_csv_write_record(out, f, ncols, "\n");
    if (rc) goto done;
    keys = sorted_keys(k, *kv.base, n, kv.size);
    if (!keys) {
        rc = SR_ENOMEM;
        goto done;
    }
    for (size_t i = 0; rc == SR_OK && i < n; i++) {
        const void *e = (const char *)*kv.base + keys[i].idx * kv.size;
        const char *s[MAX_COLS] = {0};
        switch (k) {
        case K_OPERATOR: {
            const sr_sheet_operator *x = e;
            s[OP_ID] = x->id, s[OP_NAME] = x->name;
            break;
        }
        case K_GATEWAY: {
            const sr_sheet_gateway *x = e;
            s[GW_ID] = x->id, s[GW_NAME] = x->name; /* secret: never exported */
            break;
        }
        case K_APP: {
            const sr_sheet_app *x = e;
            s[AP_ID] = x->id, s[AP_NAME] = x->name, s[AP_URL] = x->push_url;
            break;
        }
        case K_FACILITY: {
            const sr_sheet_facility *x = e;
            s[FA_ID] = x->id, s[FA_NAME] = x->name;
            break;
        }
        case K_EQUIPMENT: {
            const sr_sheet_equipment *x = e;
            s[EQ_ID] = x->id, s[EQ_FACILITY] = x->facility, s[EQ_NAME] = x->name;
            break;
        }
        case K_DEVICE: {
            const sr_sheet_device *x = e;
            s[DV_ID] = x->id, s[DV_EQUIPMENT] = x->equipment, s[DV_GATEWAY] = x->gateway, s[DV_NAME] = x->name;
            break;
        }
        case K_DATAPOINT: {
            const sr_sheet_datapoint *x = e;
            if ((unsigned)x->type > SR_DP_STRING || (unsigned)x->kind > SR_DP_BOTH ||
                (x->has_min && !isfinite(x->min)) || (x->has_max && !isfinite(x->max))) {
                rc = SR_EINVAL;
                goto done;
            }
            s[DP_ID] = x->id, s[DP_DEVICE] = x->device, s[DP_NAME] = x->name, s[DP_UNIT] = x->unit;
            s[DP_TYPE] = type_names[x->type];
            s[DP_KIND] = kind_names[x->kind];
            if (x->has_min) fmt_num(x->min, num[0]), s[DP_MIN] = num[0];
            if (x->has_max) fmt_num(x->max, num[1]), s[DP_MAX] = num[1];
            s[DP_RETENTION] = x->retention_class;
            break;
        }
        case K_GRANT: {
            const sr_sheet_grant *x = e;
            if (x->access < SR_GRANT_READ || x->access > SR_GRANT_BOTH) {
                rc = SR_EINVAL;
                goto done;
            }
            s[GR_APP] = x->app, s[GR_DATAPOINT] = x->datapoint, s[GR_ACCESS] = access_names[x->access];
            break;
        }
        case K_RETENTION: {
            const sr_sheet_retention *x = e;
            snprintf(num[0], sizeof num[0], "%u", x->days);
            s[RT_CLASS] = x->cls, s[RT_DAYS] = num[0];
            break;
        }
        default: {
            const sr_sheet_store_grant *x = e;
            if (x->access < 1 || x->access > 3) {
                rc = SR_EINVAL;
                goto done;
            }
            s[SG_APP] = x->app, s[SG_KIND] = x->kind, s[SG_TARGET] = x->target;
            s[SG_ACCESS] = store_access_names[x->access];
        }
        }
        for (size_t j = 0; j < ncols; j++) f[j] = (sr_csv_field){nz(s[j]), strlen(nz(s[j]))};
        rc = sr_csv_write_record(out, f, ncols, "\n");
    }
    if (rc == SR_OK) rc = sr_buf_append(out, "\n", 1);
done:
    sr_free(keys);
    return rc;
}

int sr_sheet_write(const sr_sheet *sh, sr_buf *out)
{
    if (!sh || !out) return SR_EINVAL;
    size_t mark = out->len;
    int rc = sr_buf_append(out, SR_SHEET_MAGIC "\n\n", sizeof SR_SHEET_MAGIC + 1);
    for (int k = 0; rc == SR_OK && k < K_N; k++) rc = write_kind(sh, k, out);
    if (rc) out->len = mark;
    return rc;
}

static int seq(const char *a, const char *b) { return !strcmp(nz(a), nz(b)); }

static int deq(int ha, double a, int hb, double b) { return ha == hb && (!ha || a == b); }

int sr_sheet_equal(const sr_sheet *a, const sr_sheet *b)
{
    if (!a || !b) return a == b;
    if (a->n_operators != b->n_operators || a->n_gateways != b->n_gateways || a->n_apps != b->n_apps ||
        a->n_facilities != b->n_facilities || a->n_equipment != b->n_equipment ||
        a->n_devices != b->n_devices || a->n_datapoints != b->n_datapoints || a->n_grants != b->n_grants ||
        a->n_store_grants != b->n_store_grants || a->n_retention != b->n_retention)
        return 0;
    for (size_t i = 0; i < a->n_operators; i++) {
        const sr_sheet_operator *x = &a->operators[i], *y = &b->operators[i];
        if (!seq(x->id, y->id) || !seq(x->name, y->name)) return 0;
    }
    for (size_t i = 0; i < a->n_gateways; i++) {
        const sr_sheet_gateway *x = &a->gateways[i], *y = &b->gateways[i];
        if (!seq(x->id, y->id) || !seq(x->name, y->name)) return 0;
    }
    for (size_t i = 0; i < a->n_apps; i++) {
        const sr_sheet_app *x = &a->apps[i], *y = &b->apps[i];
        if (!seq(x->id, y->id) || !seq(x->name, y->name) || !seq(x->push_url, y->push_url)) return 0;
    }
    for (size_t i = 0; i < a->n_facilities; i++) {
        const sr_sheet_facility *x = &a->facilities[i], *y = &b->facilities[i];
        if (!seq(x->id, y->id) || !seq(x->name, y->name)) return 0;
    }
    for (size_t i = 0; i < a->n_equipment; i++) {
        const sr_sheet_equipment *x = &a->equipment[i], *y = &b->equipment[i];
        if (!seq(x->id, y->id) || !seq(x->facility, y->facility) || !seq(x->name, y->name)) return 0;
    }
    for (size_t i = 0; i < a->n_devices; i++) {
        const sr_sheet_device *x = &a->devices[i], *y = &b->devices[i];
        if (!seq(x->id, y->id) || !seq(x->equipment, y->equipment) || !seq(x->gateway, y->gateway) ||
            !seq(x->name, y->name))
            return 0;
    }
    for (size_t i = 0; i < a->n_datapoints; i++) {
        const sr_sheet_datapoint *x = &a->datapoints[i], *y = &b->datapoints[i];
        if (!seq(x->id, y->id) || !seq(x->device, y->device) || !seq(x->name, y->name) ||
            !seq(x->unit, y->unit) || !seq(x->retention_class, y->retention_class) || x->type != y->type ||
            x->kind != y->kind ||
            !deq(x->has_min, x->min, y->has_min, y->min) || !deq(x->has_max, x->max, y->has_max, y->max))
            return 0;
    }
    for (size_t i = 0; i < a->n_grants; i++) {
        const sr_sheet_grant *x = &a->grants[i], *y = &b->grants[i];
        if (!seq(x->app, y->app) || !seq(x->datapoint, y->datapoint) || x->is_prefix != y->is_prefix ||
            x->access != y->access)
            return 0;
    }
    for (size_t i = 0; i < a->n_store_grants; i++) {
        const sr_sheet_store_grant *x = &a->store_grants[i], *y = &b->store_grants[i];
        if (!seq(x->app, y->app) || !seq(x->kind, y->kind) || !seq(x->target, y->target) || x->access != y->access)
            return 0;
    }
    for (size_t i = 0; i < a->n_retention; i++)
        if (!seq(a->retention[i].cls, b->retention[i].cls) || a->retention[i].days != b->retention[i].days) return 0;
    return 1;
}
