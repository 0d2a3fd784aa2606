/*
 * codecs/csv.c -- RFC 4180 CSV reader and writer (see csv.h).
 *
 * The reader scans the input once. Field bytes of the current record are
 * copied into r->data (each field followed by a NUL) and the field table is
 * built when the record ends, because r->data may move while it grows.
 *
 * INVARIANTS
 *  (1) r->pos <= r->len; r->line is the physical line of the byte at r->pos.
 *  (2) After sr_csv_next returns (any code but SR_DONE) r->pos is at the start
 *      of the next record or at r->len: one bad record never desynchronises
 *      the ones after it (except an unterminated quote, which ends the input).
 *  (3) r->data never grows past max_record + max_fields bytes (one NUL per
 *      field): bytes past a limit are scanned, not stored.
 */
#include "codecs/csv.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum {
    DEF_MAX_FIELD = 64 * 1024,
    DEF_MAX_RECORD = 1024 * 1024,
    DEF_MAX_FIELDS = 4096,
};

/* ------------------------------------------------------------------------ */
/* UTF-8                                                                     */

size_t sr__csv_utf8_seq(const uint8_t *p, size_t n)
{
    if (n == 0) return 0;
    uint8_t c = p[0];
    if (c < 0x80) return 1;
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c < 0xC2) return 0;       /* continuation byte or overlong 2-byte form */
    else if (c < 0xE0) need = 2;
    else if (c < 0xF0) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;      /* overlong */
        else if (c == 0xED) hi = 0x9F; /* UTF-16 surrogates */
    } else if (c < 0xF5) {
        need = 4;
        if (c == 0xF0) lo = 0x90;      /* overlong */
        else if (c == 0xF4) hi = 0x8F; /* past U+10FFFF */
    } else return 0;
    if (n < need) return 0;
    if (p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < need; i++)
        if ((p[i] & 0xC0) != 0x80) return 0;
    return need;
}

/* ------------------------------------------------------------------------ */
/* Reader                                                                    */

void sr_csv_reader_init(sr_csv_reader *r, const void *data, size_t len, const sr_csv_opts *opts)
{
    memset(r, 0, sizeof *r);
    r->p = data;
    r->len = data ? len : 0;
    if (opts) r->o = *opts;
    if (!r->o.max_field) r->o.max_field = DEF_MAX_FIELD;
    if (!r->o.max_record) r->o.max_record = DEF_MAX_RECORD;
    if (!r->o.max_fields) r->o.max_fields = DEF_MAX_FIELDS;
    r->line = 1;
    sr_buf_init(&r->data);
    /* The byte order mark some spreadsheets write is not part of the data. */
    if (r->len >= 3 && r->p[0] == 0xEF && r->p[1] == 0xBB && r->p[2] == 0xBF) r->pos = 3;
}

void sr_csv_reader_release(sr_csv_reader *r)
{
    if (!r) return;
    sr_buf_release(&r->data);
    sr_free(r->starts);
    sr_free(r->fields);
    r->starts = NULL;
    r->fields = NULL;
    r->cap = 0;
}

const char *sr_csv_error(const sr_csv_reader *r, size_t *line)
{
    if (line) *line = r->err_line;
    return r->err;
}

/* State of one sr_csv_next call. */
typedef struct scan {
    sr_csv_reader *r;
    size_t nf;        /* fields completed */
    size_t field_len; /* bytes in the current field */
    int bad;          /* a record error was found: stop storing */
    int nomem;
} scan;

static void rec_error(scan *s, const char *fmt, ...)
{
    if (s->bad) return; /* keep the first cause */
    s->bad = 1;
    s->r->err_line = s->r->line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->r->err, sizeof s->r->err, fmt, ap);
    va_end(ap);
}

static void store(scan *s, const uint8_t *p, size_t n)
{
    sr_csv_reader *r = s->r;
    if (s->bad || s->nomem) return;
    if (s->field_len + n > r->o.max_field) {
        rec_error(s, "field longer than %zu bytes", r->o.max_field);
        return;
    }
    if (r->data.len + n > r->o.max_record + s->nf) {
        rec_error(s, "record longer than %zu bytes", r->o.max_record);
        return;
    }
    if (sr_buf_append(&r->data, p, n)) {
        s->nomem = 1;
        return;
    }
    s->field_len += n;
}

/* Consume one character at r->pos that is field content (not a line break):
 * checks it and stores it. */
static void take_char(scan *s)
{
    sr_csv_reader *r = s->r;
    const uint8_t *p = r->p + r->pos;
    if (*p == 0) {
        rec_error(s, "NUL byte");
        r->pos++;
        return;
    }
    size_t n = sr__csv_utf8_seq(p, r->len - r->pos);
    if (!n) {
        rec_error(s, "invalid UTF-8 (byte 0x%02X)", *p);
        r->pos++;
        return;
    }
    store(s, p, n);
    r->pos += n;
}

/* Consume a line break (CRLF, LF or CR) at r->pos and return its length. */
static size_t eol_len(const sr_csv_reader *r)
{
    if (r->pos >= r->len) return 0;
    uint8_t c = r->p[r->pos];
    if (c == '\n') return 1;
    if (c == '\r') return (r->pos + 1 < r->len && r->p[r->pos + 1] == '\n') ? 2 : 1;
    return 0;
}

static int grow_table(scan *s)
{
    sr_csv_reader *r = s->r;
    if (s->nf < r->cap) return SR_OK;
    size_t cap = r->cap ? r->cap * 2 : 16;
    size_t *st = sr_realloc(r->starts, cap * sizeof *st);
    if (!st) return SR_ENOMEM;
    r->starts = st;
    sr_csv_field *f = sr_realloc(r->fields, cap * sizeof *f);
    if (!f) return SR_ENOMEM;
    r->fields = f;
    r->cap = cap;
    return SR_OK;
}

static void begin_field(scan *s)
{
    sr_csv_reader *r = s->r;
    s->field_len = 0;
    if (s->bad || s->nomem) return;
    if (s->nf >= r->o.max_fields) {
        rec_error(s, "more than %zu fields", r->o.max_fields);
        return;
    }
    if (grow_table(s)) {
        s->nomem = 1;
        return;
    }
    r->starts[s->nf] = r->data.len;
}

static void end_field(scan *s)
{
    if (s->bad || s->nomem) return;
    static const uint8_t nul = 0;
    /* The terminating NUL is always stored: limits count field bytes only. */
    if (sr_buf_append(&s->r->data, &nul, 1)) {
        s->nomem = 1;
        return;
    }
    s->nf++;
}

int sr_csv_next(sr_csv_reader *r, sr_csv_record *rec)
{
    if (r->pos >= r->len) return SR_DONE;
    scan s = {.r = r};
    size_t start_line = r->line, end_line;
    int comment = 0;
    r->data.len = 0;
    r->err[0] = 0;
    r->err_line = 0;

    if (r->o.comment && r->p[r->pos] == (uint8_t)r->o.comment) {
        comment = 1;
        begin_field(&s);
        while (r->pos < r->len && !eol_len(r)) take_char(&s);
        end_field(&s);
        end_line = r->line;
        size_t e = eol_len(r);
        if (e) {
            r->pos += e;
            r->line++;
        }
        goto finish;
    }

    for (;;) {
        begin_field(&s);
        if (r->pos < r->len && r->p[r->pos] == '"') {
            size_t open_line = r->line;
            r->pos++;
            for (;;) {
                if (r->pos >= r->len) {
                    /* Everything after the quote belongs to the field: no
                     * record can follow, so this ends the input. */
                    s.bad = 0;
                    rec_error(&s, "unterminated quoted field (opened on line %zu)", open_line);
                    r->err_line = open_line;
                    return SR_ECODEC;
                }
                uint8_t c = r->p[r->pos];
                if (c == '"') {
                    if (r->pos + 1 < r->len && r->p[r->pos + 1] == '"') {
                        store(&s, r->p + r->pos, 1);
                        r->pos += 2;
                        continue;
                    }
                    r->pos++;
                    break;
                }
                size_t e = eol_len(r);
                if (e) { /* a line break inside quotes is data */
                    store(&s, r->p + r->pos, e);
                    r->pos += e;
                    r->line++;
                    continue;
                }
                take_char(&s);
            }
            if (r->pos < r->len && r->p[r->pos] != ',' && !eol_len(r)) {
                rec_error(&s, "unexpected character after a closing quote");
                while (r->pos < r->len && r->p[r->pos] != ',' && !eol_len(r)) r->pos++;
            }
        } else {
            while (r->pos < r->len && r->p[r->pos] != ',' && !eol_len(r)) {
                if (r->p[r->pos] == '"') {
                    rec_error(&s, "quote inside an unquoted field");
                    r->pos++;
                    continue;
                }
                take_char(&s);
            }
        }
        end_field(&s);
        end_line = r->line;
        if (r->pos >= r->len) break;
        if (r->p[r->pos] == ',') {
            r->pos++;
            continue;
        }
        r->pos += eol_len(r);
        r->line++;
        break;
    }

finish:
    if (s.nomem) return SR_ENOMEM;
    if (s.bad) return SR_ECODEC;
    for (size_t i = 0; i < s.nf; i++) {
        size_t end = i + 1 < s.nf ? r->starts[i + 1] - 1 : r->data.len - 1;
        r->fields[i].s = (const char *)r->data.data + r->starts[i];
        r->fields[i].len = end - r->starts[i];
    }
    rec->f = r->fields;
    rec->n = s.nf;
    rec->line = start_line;
    rec->end_line = end_line;
    rec->comment = comment;
    return SR_OK;
}

/* ------------------------------------------------------------------------ */
/* Writer                                                                    */

int sr_csv_needs_quotes(const char *s, size_t len)
{
    if (len == 0) return 0;
    if (s[0] == '#' || s[0] == ' ' || s[0] == '\t') return 1;
    if (s[len - 1] == ' ' || s[len - 1] == '\t') return 1;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == ',' || c == '"' || c == '\r' || c == '\n') return 1;
    }
    return 0;
}

static int put_field(sr_buf *out, const char *s, size_t len)
{
    if (!sr_csv_needs_quotes(s, len)) return sr_buf_append(out, s, len);
    int rc = sr_buf_append(out, "\"", 1);
    size_t run = 0; /* bytes since the last quote written */
    for (size_t i = 0; rc == SR_OK && i < len; i++) {
        if (s[i] != '"') continue;
        rc = sr_buf_append(out, s + run, i + 1 - run); /* up to and with the quote */
        if (rc == SR_OK) rc = sr_buf_append(out, "\"", 1);
        run = i + 1;
    }
    if (rc == SR_OK) rc = sr_buf_append(out, s + run, len - run);
    if (rc == SR_OK) rc = sr_buf_append(out, "\"", 1);
    return rc;
}

int sr_csv_write_field(sr_buf *out, const char *s, size_t len)
{
    size_t mark = out->len;
    int rc = put_field(out, s, len);
    if (rc) out->len = mark;
    return rc;
}

int sr_csv_write_record(sr_buf *out, const sr_csv_field *f, size_t n, const char *eol)
{
    size_t mark = out->len;
    int rc = SR_OK;
    if (!eol) eol = "\r\n";
    for (size_t i = 0; rc == SR_OK && i < n; i++) {
        if (i) rc = sr_buf_append(out, ",", 1);
        if (rc == SR_OK) rc = put_field(out, f[i].s, f[i].len);
    }
    if (rc == SR_OK) rc = sr_buf_append(out, eol, strlen(eol));
    if (rc) out->len = mark;
    return rc;
}
