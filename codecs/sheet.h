/*
 * codecs/sheet.h -- the initial information setting sheet (初期情報設定シート,
 * requirement R-MA-3): parse, validate and write.
 *
 * One sheet per operator. It is a CSV file in sections ([operator],
 * [gateways], [apps], [facilities], [equipment], [devices], [datapoints],
 * [grants], [storegrants], [retention]), each with a header row naming its columns; the format is
 * specified in docs/setup-sheet.md.
 *
 * This module only parses, validates and writes: applying a sheet to the
 * engine (all-or-nothing, keeping existing secrets where the sheet leaves
 * them empty) is the importer's job. A sheet that has any error must not be
 * applied at all.
 *
 * Threads: an sr_sheet is a plain value; concurrent reads are safe.
 */
#ifndef SR_SHEET_H
#define SR_SHEET_H

#include "codecs/base/sr_alloc.h"
#include "codecs/base/sr_error.h"
#include "codecs/ids.h"

#include <stddef.h>

#define SR_SHEET_MAGIC "#suiro-setup-sheet v1"
#define SR_SHEET_ID_MAX SR_ID_MAX /* ids: codecs/ids.h, the one validator */
#define SR_SHEET_NAME_MAX 256
#define SR_SHEET_UNIT_MAX 32
#define SR_SHEET_SECRET_MIN 12
#define SR_SHEET_SECRET_MAX 256
#define SR_SHEET_URL_MAX 2048

typedef enum sr_dp_type {
    SR_DP_NUMBER = 0,
    SR_DP_INTEGER = 1,
    SR_DP_BOOLEAN = 2,
    SR_DP_STRING = 3,
} sr_dp_type;

typedef enum sr_dp_kind {
    SR_DP_MEASURE = 0, /* values come from the gateway */
    SR_DP_CONTROL = 1, /* values are set by apps (control requests) */
    SR_DP_BOTH = 2,
} sr_dp_kind;

typedef enum sr_grant_access {
    SR_GRANT_READ = 1,    /* stored/live values, monitoring */
    SR_GRANT_CONTROL = 2, /* control value set */
    SR_GRANT_BOTH = 3,
} sr_grant_access;

/* Every entry keeps the 1-based line of the row it came from (0 if it was not
 * parsed from text). Strings are NUL-terminated UTF-8, never NULL ("" when
 * the column is empty or absent), owned by the sr_sheet. */
typedef struct sr_sheet_operator {
    size_t line;
    const char *id, *name;
} sr_sheet_operator;

typedef struct sr_sheet_gateway {
    size_t line;
    const char *id, *name;
    const char *secret; /* "": keep the existing secret (never exported) */
} sr_sheet_gateway;

typedef struct sr_sheet_app {
    size_t line;
    const char *id, *name;
    const char *secret;   /* "": keep the existing secret (never exported) */
    const char *push_url; /* "": the app pulls; else http:// or https:// URL */
} sr_sheet_app;

typedef struct sr_sheet_facility {
    size_t line;
    const char *id, *name;
} sr_sheet_facility;

typedef struct sr_sheet_equipment {
    size_t line;
    const char *id, *facility, *name;
} sr_sheet_equipment;

typedef struct sr_sheet_device {
    size_t line;
    const char *id, *equipment, *gateway, *name;
} sr_sheet_device;

typedef struct sr_sheet_datapoint {
    size_t line;
    const char *id, *device, *name, *unit;
    const char *retention_class; /* the data class of its retention period ("" or NULL: "default"; docs/retention.md) */
    sr_dp_type type;
    sr_dp_kind kind;
    int has_min, has_max; /* range bounds given (number and integer only) */
    double min, max;      /* finite; min <= max when both are given */
} sr_sheet_datapoint;

typedef struct sr_sheet_grant {
    size_t line;
    const char *app;
    /* A data point id, or a prefix pattern "P0*" (every data point whose id
     * starts with "P0"); "*" alone grants every data point. */
    const char *datapoint;
    int is_prefix; /* 1 if datapoint ends with '*' (the '*' is kept in the string) */
    sr_grant_access access;
} sr_sheet_grant;

/* A grant on documents or files (R-PO-2): an app reads and/or writes the
 * documents of a collection, or the files under a path prefix, that other
 * apps own. */
typedef struct sr_sheet_store_grant {
    size_t line;
    const char *app;
    const char *kind;   /* "documents", "files", "corrections" (data points: docs/csv.md) or "alive" (gateways) */
    const char *target; /* a collection or a path prefix (ids.h sr_store_pattern_ok) */
    int access;         /* 1 read, 2 write, 3 read+write */
    const char *key;    /* kind ":" target: unique per app (the registry id is app ":" key) */
} sr_sheet_store_grant;
const char *sr_store_access_names(int access); /* "read", "write", "read+write" */

/* An operator's retention period of one class (issue #16, docs/retention.md):
 * an RG_RETENTION registry entry. cls is "default", "audit", "documents",
 * "files", "requests", "monitors" or a data point's class (an id; never
 * "message_ids", which is the platform's [retention] message_id_window_s). */
#define SR_SHEET_RETENTION_DAYS_MAX 36500 /* the Admin API's limit too */
typedef struct sr_sheet_retention {
    size_t line;
    const char *cls;
    unsigned days; /* 0: for ever; at most SR_SHEET_RETENTION_DAYS_MAX */
} sr_sheet_retention;

/* Bits of sr_sheet.sections: which [section] lines the sheet has. */
enum {
    SR_SHEET_S_OPERATOR = 1 << 0,
    SR_SHEET_S_GATEWAYS = 1 << 1,
    SR_SHEET_S_APPS = 1 << 2,
    SR_SHEET_S_FACILITIES = 1 << 3,
    SR_SHEET_S_EQUIPMENT = 1 << 4,
    SR_SHEET_S_DEVICES = 1 << 5,
    SR_SHEET_S_DATAPOINTS = 1 << 6,
    SR_SHEET_S_GRANTS = 1 << 7,
    SR_SHEET_S_STORE_GRANTS = 1 << 8,
    SR_SHEET_S_RETENTION = 1 << 9,
    SR_SHEET_S_ALL = 0x3ff,
};

typedef struct sr_sheet_error {
    size_t line;      /* 1-based line of the offending row or header; 0: whole sheet */
    char column[24];  /* column name, or "" */
    char msg[200];
} sr_sheet_error;

typedef struct sr_sheet_arena sr_sheet_arena;

/* A parsed sheet. After a successful parse every array is sorted by id
 * (grants by app, then datapoint) and all references resolve. */
typedef struct sr_sheet {
    sr_sheet_operator *operators;
    size_t n_operators; /* exactly 1 in a valid sheet */
    sr_sheet_gateway *gateways;
    size_t n_gateways;
    sr_sheet_app *apps;
    size_t n_apps;
    sr_sheet_facility *facilities;
    size_t n_facilities;
    sr_sheet_equipment *equipment;
    size_t n_equipment;
    sr_sheet_device *devices;
    size_t n_devices;
    sr_sheet_datapoint *datapoints;
    size_t n_datapoints;
    sr_sheet_grant *grants;
    size_t n_grants;
    sr_sheet_store_grant *store_grants; /* sorted by app, then key */
    size_t n_store_grants;
    sr_sheet_retention *retention; /* sorted by class */
    size_t n_retention;

    /* SR_SHEET_S_* bits of the sections the sheet has (a [section] line,
     * even with no rows after its header). A listed section is the complete
     * list of its kind: the importer removes stored entries it does not
     * list; a section left out leaves its kind as it is
     * (docs/setup-sheet.md "Removal"). Not compared by sr_sheet_equal. */
    unsigned sections;

    /* Every problem found, sorted by line. Empty after SR_OK. */
    sr_sheet_error *errors;
    size_t n_errors;
    int errors_truncated; /* 1 if more than max_errors were found */

    sr_sheet_arena *arena; /* private: owns the strings */
} sr_sheet;

typedef struct sr_sheet_opts {
    size_t max_bytes;  /* whole sheet; 0: 16 MiB (larger is SR_ETOOBIG) */
    size_t max_field;  /* one CSV field; 0: 4096 bytes */
    size_t max_errors; /* errors kept; 0: 1000 (then errors_truncated = 1) */
} sr_sheet_opts;

/**
 * Parse and validate a whole sheet, collecting every error.
 *
 * @param data, len  the sheet bytes (borrowed for the call; any bytes).
 * @param opts       limits, or NULL for the defaults.
 * @param[out] out   on SR_OK, SR_EINVAL, SR_ECODEC and SR_EVERSION: a new
 *                   sheet, to be freed with sr_sheet_free. On failure its
 *                   errors array lists every problem (line, column, message)
 *                   and its entries are incomplete: do not apply them. On any
 *                   other code *out is NULL.
 * @return SR_OK        the sheet is valid (n_errors == 0);
 *         SR_EINVAL    validation errors (bad values, references, sections);
 *         SR_ECODEC    not a sheet (empty, or no magic first line), or
 *                      the CSV itself is malformed somewhere (bad quoting,
 *                      invalid UTF-8, NUL, oversized field) -- validation
 *                      errors of the other rows are listed too;
 *         SR_EVERSION  the first line names another sheet version;
 *         SR_ETOOBIG   len > max_bytes (*out NULL);
 *         SR_ENOMEM    (*out NULL, nothing leaked);
 *         SR_EINVAL    with *out NULL: out or (data with len > 0) is NULL.
 */
SR_MUST_CHECK int sr_sheet_parse(const void *data, size_t len, const sr_sheet_opts *opts,
                                 sr_sheet **out);

/* Free a sheet from sr_sheet_parse. NULL-safe. */
void sr_sheet_free(sr_sheet *sh);

/**
 * Append the canonical form of sh to out: the magic line, then the sections
 * in the order above, each with all its columns in a fixed order, rows sorted
 * by id (grants by app, datapoint), secrets written empty, [retention] only
 * when it has rows (older sheets re-export byte for byte), numbers in their
 * shortest exact form, LF line ends. parse(write(x)) equals x (sr_sheet_equal)
 * and writing that again gives the same bytes.
 *
 * Entries need not be sorted (sh may be built by hand), strings may be NULL
 * (written empty). Validity is not checked, except:
 * @return SR_OK; SR_EINVAL (a non-finite min/max, or an enum out of range:
 *         out unchanged); SR_ENOMEM (out unchanged).
 */
SR_MUST_CHECK int sr_sheet_write(const sr_sheet *sh, sr_buf *out);

/* 1 if a and b hold the same entries in the same order (parsed sheets are
 * sorted), else 0. Line numbers, errors and secrets are ignored: secrets are
 * not part of the exported state. */
int sr_sheet_equal(const sr_sheet *a, const sr_sheet *b);

/* Canonical names of the enums ("number", "measure", "read", ...); "?" if out of range. */
const char *sr_dp_type_name(sr_dp_type t);
const char *sr_dp_kind_name(sr_dp_kind k);
const char *sr_grant_access_name(sr_grant_access a);

/* 1 if the grant pattern (an id, or a prefix followed by '*') covers id. */
int sr_sheet_grant_matches(const char *pattern, const char *id);

#endif
