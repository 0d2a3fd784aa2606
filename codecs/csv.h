/*
 * codecs/csv.h -- RFC 4180 CSV reader and writer (pure code, no I/O).
 *
 * Reader: parses a whole in-memory document record by record. Quoted fields
 * may hold commas, "" (an escaped quote) and line breaks; records end with
 * CRLF, LF or a lone CR; a leading UTF-8 byte order mark is skipped. Bytes are
 * checked as they are read: invalid UTF-8 (overlong forms, surrogates, code
 * points past U+10FFFF, truncated sequences) and NUL bytes are rejected with
 * the physical line number. Fields and records are bounded by configurable
 * limits so hostile input cannot make the reader allocate without bound.
 *
 * Errors are of two sorts:
 *  - record errors (bad byte, field or record too large, stray quote): the
 *    reader still finds the end of the record, returns SR_ECODEC for it and
 *    can be called again for the next record;
 *  - an unterminated quoted field: the rest of the input belongs to it, so
 *    SR_ECODEC is returned and the next call returns SR_DONE.
 *
 * Writer: appends fields and records to an sr_buf, quoting only when needed.
 *
 * All allocation goes through sr_malloc/sr_realloc (codecs/base/sr_alloc.h).
 * Threads: a reader is used by one thread at a time; the writer functions are
 * reentrant.
 */
#ifndef SR_CSV_H
#define SR_CSV_H

#include "codecs/base/sr_alloc.h"
#include "codecs/base/sr_error.h"

#include <stddef.h>
#include <stdint.h>

/* One field of a record: NUL-terminated (the reader rejects NUL bytes, so
 * s[len] is the only NUL). Borrowed from the reader. */
typedef struct sr_csv_field {
    const char *s;
    size_t len;
} sr_csv_field;

typedef struct sr_csv_record {
    const sr_csv_field *f; /* n fields; valid until the next sr_csv_next/release */
    size_t n;              /* >= 1: an empty line is one empty field */
    size_t line;           /* 1-based physical line where the record starts */
    size_t end_line;       /* physical line where it ends (> line with quoted line breaks) */
    int comment;           /* 1: a comment line, f[0] is the raw line text */
} sr_csv_record;

typedef struct sr_csv_opts {
    size_t max_field;  /* bytes in one field; 0: 64 KiB */
    size_t max_record; /* bytes of field data in one record; 0: 1 MiB */
    size_t max_fields; /* fields in one record; 0: 4096 */
    /* If not 0: a record that starts with this byte (at the start of a line,
     * outside quotes) is a comment. It runs to the end of the physical line,
     * is not split on commas and quotes in it have no meaning. */
    char comment;
} sr_csv_opts;

typedef struct sr_csv_reader {
    /* private: use the functions below */
    const uint8_t *p;
    size_t len, pos;
    sr_csv_opts o;
    size_t line;
    sr_buf data;          /* field bytes of the current record, NUL-separated */
    size_t *starts;       /* offset in data of each field */
    sr_csv_field *fields; /* built when a record is complete */
    size_t cap;           /* capacity of starts and fields */
    size_t err_line;
    char err[160];
} sr_csv_reader;

/* Set up a reader over data[0..len) (borrowed: must outlive the reader).
 * opts may be NULL (defaults). Does not allocate. */
void sr_csv_reader_init(sr_csv_reader *r, const void *data, size_t len, const sr_csv_opts *opts);

/* Free the reader's buffers (not the input). NULL-safe; idempotent. */
void sr_csv_reader_release(sr_csv_reader *r);

/**
 * Read the next record.
 *
 * @param[out] rec  set on SR_OK; its fields are valid until the next call.
 * @return SR_OK;
 *         SR_DONE   no more records (also after an unterminated quote);
 *         SR_ECODEC the record is malformed; sr_csv_error() gives the message
 *                   and line. Reading may continue with the next record;
 *         SR_ENOMEM the record could not be stored; the reader is positioned
 *                   after it, so reading may continue.
 */
SR_MUST_CHECK int sr_csv_next(sr_csv_reader *r, sr_csv_record *rec);

/* Message of the last SR_ECODEC ("" if none) and its physical line. */
const char *sr_csv_error(const sr_csv_reader *r, size_t *line);

/* Whether a field must be quoted: it has a comma, quote, CR or LF, starts
 * with '#' (it could be taken for a comment) or starts or ends with a space
 * or tab (which spreadsheets and sr_sheet trim). */
int sr_csv_needs_quotes(const char *s, size_t len);

/* Append one field, quoted if sr_csv_needs_quotes. SR_OK or SR_ENOMEM (out
 * unchanged). */
SR_MUST_CHECK int sr_csv_write_field(sr_buf *out, const char *s, size_t len);

/* Append n fields separated by commas and then eol ("\n" or "\r\n"; NULL:
 * "\r\n"). n == 0 writes an empty line, which reads back as one empty field.
 * SR_OK or SR_ENOMEM (out unchanged). */
SR_MUST_CHECK int sr_csv_write_record(sr_buf *out, const sr_csv_field *f, size_t n,
                                      const char *eol);

/* Length of the valid UTF-8 sequence at p[0..n), or 0 if it is not one
 * (n > 0). Shared with codecs/sheet.c. */
size_t sr__csv_utf8_seq(const uint8_t *p, size_t n);

#endif
