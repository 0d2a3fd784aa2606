/*
 * api/cli/cmd_apsim.c -- `suiro apsim`: the app stub (issue #5 item 10).
 *
 * Performs every AP-IF call of ../shared/docs/interface.md from the command
 * line, one subcommand per row of the AP-IF table, and prints the server's
 * answer on stdout: JSON compact (or --pretty) in the server's member order,
 * a PEM as it is, a downloaded file's bytes. It is what an app developer tries the
 * API with and what scripts and tests drive the server with; `load` is the
 * read benchmark (libcurl multi, C keep-alive connections, one JSON line),
 * of an AP-IF query or, with --get-url, of any HTTP GET: bench/ap_query.sh
 * measures suiro and its peers (InfluxDB, VictoriaMetrics) with the one client.
 *
 * SESSIONS
 *  Without --token (or SUIRO_TOKEN) a run logs in (POST /api/v1/sessions)
 *  just before its first call and logs out (DELETE /api/v1/sessions/current)
 *  at the end; `login` prints the token answer and leaves the session open
 *  for scripts to pass back with --token. Single calls share one libcurl easy
 *  handle, so the login, the call and the logout use one connection.
 *
 * EXIT CODES
 *  0 success. 1 the server answered an error (its error JSON is printed on
 *  stdout all the same), or an answer failed a check (a part not accepted, a
 *  checksum that differs, a local file that cannot be read or written).
 *  2 usage (unknown option, missing argument). 3 the server could not be
 *  reached or the transfer broke (connect, TLS, timeout, reset).
 *
 * MEMORY
 *  JSON answers are held in memory (bounded by the server's page sizes;
 *  stored-values --all holds the merged pages). Files go through with
 *  bounded memory both ways: an upload is read from disk by libcurl's read
 *  callback one part at a time (files over --part-size go in parts with
 *  Content-Range), a download is written out as it arrives.
 */
#include "api/cli/cli.h"
#include "api/httpu.h"
#include "codecs/base/sr_alloc.h"
#include "codecs/rfc3339.h"
#include "storage/crypto.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { EX_OK = 0, EX_API = 1, EX_USAGE = 2, EX_CONN = 3 };
enum {
    MAX_IDS = 1000,           /* data IDs a call may name (the server's limit) */
    MAX_GIVEN = 64,           /* command options on one command line */
    MAX_HEADERS = 8,          /* load --header lines */
    MAX_ANSWER = 256 << 20,   /* a JSON answer held in memory */
    MAX_ERROR_BODY = 1 << 20, /* an error answer kept while downloading */
    MAX_STDIN = 64 << 20,     /* a document read from stdin */
    STALL_S = 90,             /* a transfer with no byte for this long fails */
    GW_GRACE_MS = 10000,      /* HTTP timeout beyond the gateway timeout */
};
#define DEFAULT_URL "http://127.0.0.1:8080"
#define DEFAULT_PART_SIZE (8ull << 20)

/* ---- options --------------------------------------------------------------- */

typedef struct opts {
    /* common */
    const char *url, *op, *app, *secret, *token, *cacert, *timeout_ms;
    int pretty, verbose;
    /* per command, as given; numbers are checked where they are used */
    const char *parent, *interval_ms, *start_at, *end_at, *monitor_id, *after, *value, *protection, *request_id,
        *from, *to, *limit, *order, *interval, *agg, *fill, *id, *if_match, *json, *file, *field, *content_type,
        *part_size, *out, *prefix, *what, *duration, *requests, *connections, *rate, *get_url, *save_body;
    int async, all, changing, bom;
    char **ids; /* --data-id, repeated or comma-separated; owned */
    size_t nids;
    const char *headers[MAX_HEADERS]; /* load --header, repeated; borrowed from argv */
    size_t nheaders;
    const char *pos[4]; /* the command and its arguments */
    int npos;
    const char *given[MAX_GIVEN]; /* command options seen, for the check */
    int ngiven;
} opts;

static int add_ids(void *op, const char *v);
static int add_header(void *op, const char *v);

#define OS(n, f, arg, doc) SR_OPT_STR(n, 0, arg, opts, f, doc)
#define OF(n, f, doc) SR_OPT_FLAG(n, 0, opts, f, doc)
/* The session options (any command) first, then the command options (each
 * command names the ones it takes in CMDS below). */
enum { NCOMMON = 9 };
const sr_opt sr_opts_apsim[] = {
    OS("url", url, "URL", "server root (default " DEFAULT_URL ", env SUIRO_URL)"),
    OS("operator", op, "OP", "log in as this operator's app [demo]"),
    OS("app", app, "APP", "the app [APP001]"),
    OS("secret", secret, "S", "the app's secret (env SUIRO_APP_SECRET)"),
    OS("token", token, "T", "reuse a session instead (env SUIRO_TOKEN; see `login`)"),
    OS("cacert", cacert, "FILE", "CA certificates for an https:// URL"),
    OS("timeout-ms", timeout_ms, "N", "give up a call after N ms (current-values, control: the gateway timeout)"),
    OF("pretty", pretty, "indented JSON (default: compact)"),
    SR_OPT_FLAG("verbose", 'v', opts, verbose, "each call on stderr: method, path, status, time"),
    SR_OPT_FN("data-id", 0, "ID[,ID...]", add_ids, "data IDs (repeat or comma-separate; at most 1000)"),
    SR_OPT_FN("header", 0, "'NAME: VALUE'", add_header, "load --get-url: a request header (repeatable, at most 8)"),
    OS("parent", parent, "ID", "masters: children of this one"),
    OS("interval-ms", interval_ms, "N", "monitor-start: the interval"),
    OS("start-at", start_at, "T", "monitor-start: when it starts (RFC 3339, or -1h, now)"),
    OS("end-at", end_at, "T", "monitor-start: when it ends (as --start-at)"),
    OS("monitor-id", monitor_id, "M", "the monitor"),
    OS("after", after, "T", "monitor-values: values after T"),
    OS("value", value, "V", "control: the value (JSON; a bare word is a string); doc-query: the value"),
    OS("protection", protection, "JSON", "control: the protection passed to the gateway"),
    OS("request-id", request_id, "Q", "request: the request"),
    OS("from", from, "T", "the first time (RFC 3339, or -1h, -30m, -10s, -2d, now)"),
    OS("to", to, "T", "the end time (as --from)"),
    OS("limit", limit, "N", "at most N values"),
    OS("order", order, "asc|desc", "the order of the values"),
    OS("interval", interval, "I", "downsample: the bucket (60s, 5m, 1h)"),
    OS("agg", agg, "A,...", "downsample: min,max,avg,count,first,last,sum"),
    OS("fill", fill, "F", "downsample: none|null|previous|linear"),
    OS("id", id, "ID", "doc-put: the document's ID"),
    OS("if-match", if_match, "REV", "the revision the document must have"),
    OS("json", json, "STR", "doc-put: the document"),
    OS("file", file, "F", "doc-put, file-put: the local file"),
    OS("field", field, "F", "doc-query: the field"),
    OS("content-type", content_type, "T", "file-put: the file's type"),
    OS("part-size", part_size, "BYTES", "file-put: parts of this size [8 MiB]"),
    OS("out", out, "F", "file-get, export: write to this file"),
    OS("prefix", prefix, "P", "file-list: paths starting with P"),
    OS("what", what, "Q", "load: latest|raw|downsample"),
    OS("duration", duration, "S", "load: run S seconds"),
    OS("requests", requests, "N", "load: N requests"),
    OS("connections", connections, "C", "load: C keep-alive connections"),
    OS("rate", rate, "R", "load: paced, R requests a second in all"),
    OS("get-url", get_url, "URL", "load: any HTTP GET instead of an AP-IF query"),
    OS("save-body", save_body, "FILE", "load: write the first answer's body to FILE"),
    OF("async", async, "current-values, control: answer at once with a request ID"),
    OF("all", all, "stored-values: follow nextCursor, print one merged answer"),
    OF("changing", changing, "load: the data may change (bodies may differ)"),
    OF("bom", bom, "export: start the CSV with a UTF-8 byte order mark (Excel)"),
    SR_OPT_END,
};

/* which command options were given comes from sr_args.seen (rows 0..63) */
_Static_assert(sizeof sr_opts_apsim / sizeof sr_opts_apsim[0] <= 65, "apsim options: at most 64 rows");

const char sr_apsim_more[] =
    "Options may come anywhere; command options apply to the commands that name them below.\n\n"
    "commands ([n]: the row of the AP-IF table in docs/interface.md):\n"
    "  login                                    [1] print the token JSON, stay logged in\n"
    "  logout                                   [2] end the --token session\n"
    "  masters facilities|equipment|devices|datapoints [--parent ID]        [3]\n"
    "  current-values --data-id ID... [--async]                              [4]\n"
    "  monitor-start --data-id ID... --interval-ms N [--start-at T] [--end-at T]  [5]\n"
    "  monitors                                                              [6]\n"
    "  monitor-stop --monitor-id M                                           [7]\n"
    "  monitor-values --monitor-id M [--after T]\n"
    "  control --data-id ID --value V [--protection JSON] [--async]          [8]\n"
    "                     V is JSON (42.5, true, '\"text\"'); a bare word is a string\n"
    "  certificate platform|app|gateway [ID]    [9] prints the PEM\n"
    "  request --request-id Q                   the status of an async request\n"
    "  stored-values --data-id ID [--from T] [--to T] [--limit N] [--order asc|desc] [--all]\n"
    "                     [10] T: RFC 3339 or -1h, -30m, -10s, -2d, now; --all follows\n"
    "                     nextCursor and prints one merged {values:[...]}\n"
    "  latest --data-id ID...\n"
    "  downsample --data-id ID --interval 60s --agg min,max,avg [--from T] [--to T]\n"
    "             [--fill none|null|previous|linear]\n"
    "  export --data-id ID... [--from T] [--to T] [--interval I [--agg A] [--fill F]] [--bom] [--out F]\n"
    "                     (ext) the stored values as CSV (dataId,timestamp,value,quality;\n"
    "                     downsampled: a column per aggregate), streamed to F or stdout\n"
    "  doc-put COLL [--id ID [--if-match REV]] [--json STR | --file F]  (else stdin) [11][12]\n"
    "  doc-get COLL ID   |   doc-query COLL [--field F --value V]\n"
    "  doc-delete COLL ID [--if-match REV]                                   [13]\n"
    "  file-put PATH --file F [--content-type T] [--part-size BYTES]         [15]\n"
    "                     files over --part-size (default 8 MiB) go in parts\n"
    "  file-get PATH [--out F]   |   file-list [--prefix P]                  [14]\n"
    "  file-delete PATH                                                      [16]\n"
    "  load --what latest|raw|downsample --data-id ID [--requests N | --duration S]\n"
    "       [--connections C] [--from T --to T --limit N --interval I --agg A --fill F]\n"
    "       [--changing] [--rate R]  benchmark: C keep-alive connections repeat the query\n"
    "                     (--rate: paced, a request issued every 1/R s at most, so\n"
    "                     two servers compared get the same requests in the same time);\n"
    "                     prints one JSON line (verify: FNV-1a 64 of the first body;\n"
    "                     bodies must all be identical unless the data may change:\n"
    "                     a relative time, or --changing)\n"
    "  load --get-url URL [--header 'Name: value']... [--requests N | --duration S]\n"
    "       [--connections C] [--changing]\n"
    "                     the same load on any HTTP GET (another system's query API,\n"
    "                     for bench/ap_query.sh): no session, every 200 answer counts,\n"
    "                     the same verification; --header repeats (at most 8)\n"
    "       --save-body FILE  (either form) write the first answer's body to FILE\n"
    "\nexit: 0 ok, 1 error answer (printed), 2 usage, 3 server not reachable\n";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "suiro apsim: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (suiro apsim --help)\n");
    return EX_USAGE;
}

static int add_ids(void *op, const char *v)
{
    opts *o = op;
    const char *p = v;
    for (;;) {
        const char *c = strchr(p, ',');
        size_t l = c ? (size_t)(c - p) : strlen(p);
        if (!l) return usage_error("--data-id: an empty data ID in '%s'", v);
        if (o->nids >= MAX_IDS) return usage_error("--data-id: at most 1000 (%s)", v);
        if (!o->ids && !(o->ids = calloc(MAX_IDS, sizeof *o->ids))) return EX_API;
        if (!(o->ids[o->nids] = strndup(p, l))) return EX_API;
        o->nids++;
        if (!c) return 0;
        p = c + 1;
    }
}

static int add_header(void *op, const char *v)
{
    opts *o = op;
    if (o->nheaders == MAX_HEADERS) return usage_error("--header: at most 8 (%s)", v);
    if (!strchr(v, ':') || strpbrk(v, "\r\n")) return usage_error("--header: 'Name: value', not '%s'", v);
    o->headers[o->nheaders++] = v;
    return 0;
}

/* A decimal in [lo, hi]; name for the message. -1 (and the usage message) if not. */
static int num_opt(const char *name, const char *v, unsigned long long lo, unsigned long long hi,
                   unsigned long long *out)
{
    unsigned long long x;
    if (sr_cli_parse_u64(v, &x) || x < lo || x > hi) {
        fprintf(stderr, "suiro apsim: --%s: a whole number %llu..%llu, not '%s'\n", name, lo, hi, v);
        return -1;
    }
    *out = x;
    return 0;
}

/* ---- the HTTP client (one easy handle: keep-alive across calls) ---------- */

typedef size_t (*write_fn)(char *p, size_t size, size_t n, void *ud);

typedef struct client {
    CURL *c;
    const opts *o;
    char base[1024];   /* the server root, no trailing slash */
    long timeout_ms;   /* whole call; 0: none (a stall of STALL_S fails it) */
    char auth[160];    /* "Authorization: Bearer ..." or "" */
    int own_session;   /* we logged in: log out at the end */
    int no_session;    /* login/logout handle the session themselves */
    /* the last answer */
    long status;
    sr_buf body;
    char etag[160];
    char errbuf[CURL_ERROR_SIZE];
} client;

typedef struct hreq {
    const char *method; /* GET POST PUT DELETE */
    const char *path;   /* from "/", escaped, with its query */
    const void *data;   /* in-memory body, or NULL */
    size_t len;
    const char *ctype; /* the body's Content-Type */
    const char *hdr[3]; /* more header lines */
    /* a streamed upload (read callback), instead of data */
    curl_read_callback read;
    curl_seek_callback seek;
    void *read_ud;
    curl_off_t read_len;
    /* where the answer goes; NULL: client.body */
    write_fn write;
    void *write_ud;
} hreq;

static double mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1000.0 + (double)t.tv_nsec / 1e6;
}

static size_t to_body(char *p, size_t size, size_t n, void *ud)
{
    sr_buf *b = ud;
    size_t len = size * n;
    if (b->len + len > MAX_ANSWER || sr_buf_append(b, p, len)) return 0;
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    client *cl = ud;
    size_t len = size * n;
    if (len >= 5 && !memcmp(p, "HTTP/", 5)) cl->etag[0] = 0; /* a new response (after a 100) */
    else if (len > 5 && !strncasecmp(p, "etag:", 5)) {
        size_t s = 5, e = len;
        while (s < e && (p[s] == ' ' || p[s] == '\t')) s++;
        while (e > s && (p[e - 1] == '\r' || p[e - 1] == '\n' || p[e - 1] == ' ')) e--;
        if (e - s < sizeof cl->etag) {
            memcpy(cl->etag, p + s, e - s);
            cl->etag[e - s] = 0;
        }
    }
    return len;
}

/* The options every transfer shares (single calls and load connections). */
static void common_setopts(CURL *c, const client *cl, long timeout_ms)
{
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "suiro-apsim/" "0.1");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    if (timeout_ms > 0) curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)STALL_S);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    if (cl->o->cacert) curl_easy_setopt(c, CURLOPT_CAINFO, cl->o->cacert);
}

static int login(client *cl, int print);

/* One exchange. 0 when the server answered (any status, in cl->status and
 * cl->body); otherwise the exit code, already reported: EX_CONN when the
 * server could not be reached, or the login's code when the lazy login
 * before the first call failed. */
static int call(client *cl, const hreq *r)
{
    if (!cl->auth[0] && !cl->no_session) {
        int rc = login(cl, 0);
        if (rc) return rc;
    }
    CURL *c = cl->c;
    curl_easy_reset(c); /* keeps the live connection */
    cl->body.len = 0;
    cl->status = 0;
    cl->etag[0] = 0;
    cl->errbuf[0] = 0;
    sr_buf url;
    sr_buf_init(&url);
    if (sr_buf_append(&url, cl->base, strlen(cl->base)) || sr_buf_append(&url, r->path, strlen(r->path) + 1)) {
        sr_buf_release(&url);
        fprintf(stderr, "suiro apsim: out of memory\n");
        return EX_API;
    }
    curl_easy_setopt(c, CURLOPT_URL, (const char *)url.data);
    common_setopts(c, cl, cl->timeout_ms);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cl->errbuf);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, cl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, r->write ? r->write : to_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r->write ? r->write_ud : (void *)&cl->body);
    struct curl_slist *h = NULL;
    char line[300];
    h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip */
    if (cl->auth[0]) h = curl_slist_append(h, cl->auth);
    if (r->ctype) {
        snprintf(line, sizeof line, "Content-Type: %s", r->ctype);
        h = curl_slist_append(h, line);
    }
    for (size_t i = 0; i < sizeof r->hdr / sizeof r->hdr[0]; i++)
        if (r->hdr[i]) h = curl_slist_append(h, r->hdr[i]);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (r->read) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, r->read);
        curl_easy_setopt(c, CURLOPT_READDATA, r->read_ud);
        curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, r->seek);
        curl_easy_setopt(c, CURLOPT_SEEKDATA, r->read_ud);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, r->read_len);
        if (strcmp(r->method, "PUT")) curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
    } else if (r->data || !strcmp(r->method, "POST") || !strcmp(r->method, "PUT")) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->data ? (const char *)r->data : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(r->data ? r->len : 0));
        if (strcmp(r->method, "POST")) curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
    } else if (strcmp(r->method, "GET"))
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
    double t0 = mono_ms();
    CURLcode cc = curl_easy_perform(c);
    curl_slist_free_all(h);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &cl->status);
    if (cl->o->verbose)
        fprintf(stderr, "apsim: %s %s -> %ld (%.1f ms)%s%s\n", r->method, r->path, cl->status, mono_ms() - t0,
                cc ? " " : "", cc ? curl_easy_strerror(cc) : "");
    int rc = 0;
    if (cc == CURLE_WRITE_ERROR || cc == CURLE_ABORTED_BY_CALLBACK || cc == CURLE_READ_ERROR) {
        /* our own callback stopped it: the callback reported why (to_body does not) */
        if (!r->write && cc == CURLE_WRITE_ERROR) fprintf(stderr, "suiro apsim: the answer is too large\n");
        rc = EX_API;
    } else if (cc != CURLE_OK) {
        fprintf(stderr, "suiro apsim: %s: %s\n", (const char *)url.data,
                cl->errbuf[0] ? cl->errbuf : curl_easy_strerror(cc));
        rc = EX_CONN;
    }
    sr_buf_release(&url);
    return rc;
}

/* Print the answer held in cl->body: JSON compact (or --pretty), in the
 * server's member order; anything else (a PEM) as it is; a final newline.
 * 0 for a 2xx status, EX_API otherwise (the error body is printed on stdout
 * all the same). */
/* JSON on f as the server writes it (sr_json_write: a decimal prints as it
 * was sent, 0.1 and not 0.10000000000000001), compact or indented by 2 */
static int put_pretty(sr_buf *b, json_t *v, int depth)
{
    static const char sp[] = "                                                                ";
    int rc = SR_OK, first = 1;
#define NL(d) (sr_buf_append(b, "\n", 1) || sr_buf_append(b, sp, (size_t)((d) * 2 < 64 ? (d) * 2 : 64)))
    if (json_is_object(v) && json_object_size(v)) {
        const char *k;
        json_t *x;
        rc = sr_buf_append(b, "{", 1);
        json_object_foreach(v, k, x)
        {
            if (!rc && !first) rc = sr_buf_append(b, ",", 1);
            first = 0;
            if (!rc) rc = NL(depth + 1);
            if (!rc) rc = sr_json_put_string(b, k, strlen(k));
            if (!rc) rc = sr_buf_append(b, ": ", 2);
            if (!rc) rc = put_pretty(b, x, depth + 1);
        }
        if (!rc) rc = NL(depth);
        return rc ? rc : sr_buf_append(b, "}", 1);
    }
    if (json_is_array(v) && json_array_size(v)) {
        size_t i;
        json_t *x;
        rc = sr_buf_append(b, "[", 1);
        json_array_foreach(v, i, x)
        {
            if (!rc && i) rc = sr_buf_append(b, ",", 1);
            if (!rc) rc = NL(depth + 1);
            if (!rc) rc = put_pretty(b, x, depth + 1);
        }
        if (!rc) rc = NL(depth);
        return rc ? rc : sr_buf_append(b, "]", 1);
    }
#undef NL
    return sr_json_write(b, v);
}

static void print_json(FILE *f, json_t *j, int pretty)
{
    sr_buf b;
    sr_buf_init(&b);
    if ((pretty ? put_pretty(&b, j, 0) : sr_json_write(&b, j)) == SR_OK) {
        fwrite(b.data, 1, b.len, f);
        fputc('\n', f);
    } else
        fprintf(stderr, "suiro apsim: out of memory\n");
    sr_buf_release(&b);
}

static int answer(client *cl)
{
    const char *b = (const char *)cl->body.data;
    size_t n = cl->body.len;
    json_t *j = n && (b[0] == '{' || b[0] == '[') ? json_loadb(b, n, 0, NULL) : NULL;
    if (j) {
        print_json(stdout, j, cl->o->pretty);
        json_decref(j);
    } else if (n) {
        fwrite(b, 1, n, stdout);
        if (b[n - 1] != '\n') fputc('\n', stdout);
    }
    fflush(stdout);
    if (cl->status >= 200 && cl->status < 300) return EX_OK;
    json_t *e = n ? json_loadb(b, n, 0, NULL) : NULL;
    const char *code = json_string_value(json_object_get(json_object_get(e, "result"), "code"));
    fprintf(stderr, "suiro apsim: HTTP %ld%s%s\n", cl->status, code ? " " : "", code ? code : "");
    json_decref(e);
    return EX_API;
}

/* a JSON value (consumed) as the body of method path */
static int call_json(client *cl, const char *method, const char *path, json_t *v)
{
    /* the numbers as given (0.1, not 0.10000000000000001) */
    sr_buf txt;
    sr_buf_init(&txt);
    int wrc = v ? sr_json_write(&txt, v) : SR_ENOMEM;
    json_decref(v);
    if (wrc) {
        sr_buf_release(&txt);
        fprintf(stderr, "suiro apsim: out of memory\n");
        return EX_API;
    }
    hreq r = {.method = method, .path = path, .data = txt.data, .len = txt.len, .ctype = "application/json"};
    int rc = call(cl, &r);
    sr_buf_release(&txt);
    return rc;
}

/* ---- sessions --------------------------------------------------------------- */

static int login(client *cl, int print)
{
    const opts *o = cl->o;
    json_t *b = json_pack("{s:s,s:s,s:s}", "operatorId", o->op, "appId", o->app, "secret", o->secret);
    int saved = cl->no_session;
    cl->no_session = 1;
    int rc = call_json(cl, "POST", "/api/v1/sessions", b);
    cl->no_session = saved;
    if (rc) return rc;
    if (cl->status != 201) return answer(cl); /* the refusal is the answer */
    json_t *j = json_loadb((const char *)cl->body.data, cl->body.len, 0, NULL);
    const char *t = json_string_value(json_object_get(j, "token"));
    if (t && strlen(t) < sizeof cl->auth - 32) {
        snprintf(cl->auth, sizeof cl->auth, "Authorization: Bearer %s", t);
        cl->own_session = !print;
    }
    json_decref(j);
    if (!cl->auth[0]) {
        fprintf(stderr, "suiro apsim: the login answer has no token\n");
        return EX_API;
    }
    return print ? answer(cl) : 0;
}

static int logout(client *cl)
{
    hreq r = {.method = "DELETE", .path = "/api/v1/sessions/current"};
    int rc = call(cl, &r);
    cl->auth[0] = 0;
    return rc;
}

/* ---- building paths ---------------------------------------------------------- */

typedef struct path {
    sr_buf b;
    int has_query;
    int oom;
} path;

static void p_add(path *p, const char *s)
{
    if (!p->oom && sr_buf_append(&p->b, s, strlen(s))) p->oom = 1;
}

/* s URL-encoded; with keep_slash each '/'-separated segment on its own */
static void p_esc(path *p, CURL *c, const char *s, int keep_slash)
{
    for (;;) {
        const char *sl = keep_slash ? strchr(s, '/') : NULL;
        size_t l = sl ? (size_t)(sl - s) : strlen(s);
        char *e = curl_easy_escape(c, s, (int)l);
        if (!e) p->oom = 1;
        else p_add(p, e);
        curl_free(e);
        if (!sl) return;
        p_add(p, "/");
        s = sl + 1;
    }
}

static void p_param(path *p, CURL *c, const char *k, const char *v)
{
    if (!v) return;
    p_add(p, p->has_query ? "&" : "?");
    p->has_query = 1;
    p_add(p, k);
    p_add(p, "=");
    p_esc(p, c, v, 0);
}

/* the NUL-terminated path, or NULL (out of memory, reported) */
static const char *p_str(path *p)
{
    if (!p->oom && sr_buf_append(&p->b, "", 1)) p->oom = 1;
    if (p->oom) {
        fprintf(stderr, "suiro apsim: out of memory\n");
        return NULL;
    }
    p->b.len--;
    return (const char *)p->b.data;
}

static int get_path(client *cl, path *p)
{
    const char *s = p_str(p);
    int rc = EX_API;
    if (s) {
        hreq r = {.method = "GET", .path = s};
        rc = call(cl, &r);
        if (!rc) rc = answer(cl);
    }
    sr_buf_release(&p->b);
    return rc;
}

static json_t *ids_json(const opts *o)
{
    json_t *a = json_array();
    for (size_t i = 0; i < o->nids; i++) json_array_append_new(a, json_string(o->ids[i]));
    return a;
}

/* ---- commands: sessions, masters, requests, monitors, control --------------- */

static int cmd_login(client *cl, opts *o)
{
    (void)o;
    return login(cl, 1);
}

static int cmd_logout(client *cl, opts *o)
{
    (void)o;
    int rc = logout(cl);
    return rc ? rc : answer(cl);
}

static int cmd_masters(client *cl, opts *o)
{
    const char *w = o->pos[1];
    if (strcmp(w, "facilities") && strcmp(w, "equipment") && strcmp(w, "devices") && strcmp(w, "datapoints"))
        return usage_error("masters: facilities, equipment, devices or datapoints, not '%s'", w);
    path p = {0};
    p_add(&p, "/api/v1/masters/");
    p_add(&p, w);
    p_param(&p, cl->c, "parentId", o->parent);
    return get_path(cl, &p);
}

/* current-values and control: --timeout-ms is the gateway timeout */
static int gw_timeout(client *cl, const opts *o, json_t *body)
{
    unsigned long long t;
    if (!o->timeout_ms) return 0;
    if (num_opt("timeout-ms", o->timeout_ms, 1, 60000, &t)) return EX_USAGE;
    json_object_set_new(body, "timeoutMs", json_integer((json_int_t)t));
    cl->timeout_ms = (long)t + GW_GRACE_MS;
    return 0;
}

static int cmd_current_values(client *cl, opts *o)
{
    if (!o->nids) return usage_error("current-values: %s", "--data-id is required");
    json_t *b = json_pack("{s:o}", "dataIds", ids_json(o));
    if (gw_timeout(cl, o, b)) {
        json_decref(b);
        return EX_USAGE;
    }
    int rc = call_json(cl, "POST", o->async ? "/api/v1/current-values?async=true" : "/api/v1/current-values", b);
    return rc ? rc : answer(cl);
}

/* a time option (sr_time_parse: RFC 3339 with any offset, now, -1h ...) as
 * the RFC 3339 text the server takes; 0, or -1 after the usage error */
static int time_opt(const char *name, const char *v, int64_t now_ms, char out[32])
{
    int64_t ms;
    if (!sr_time_parse(v, strlen(v), now_ms, &ms)) {
        sr_rfc3339_format(ms, out);
        return 0;
    }
    fprintf(stderr,
            "suiro apsim: --%s: '%s' is not a time (RFC 3339, or -1h, -30m, -10s, -2d, now) (suiro apsim --help)\n",
            name, v);
    return -1;
}

static int cmd_monitor_start(client *cl, opts *o)
{
    unsigned long long iv;
    if (!o->nids || !o->interval_ms)
        return usage_error("monitor-start: %s", "--data-id and --interval-ms are required");
    if (num_opt("interval-ms", o->interval_ms, 1, 86400000, &iv)) return EX_USAGE;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    char start[32], end[32];
    if ((o->start_at && time_opt("start-at", o->start_at, now_ms, start)) ||
        (o->end_at && time_opt("end-at", o->end_at, now_ms, end)))
        return EX_USAGE;
    json_t *b = json_pack("{s:o,s:I}", "dataIds", ids_json(o), "intervalMs", (json_int_t)iv);
    if (o->start_at) json_object_set_new(b, "startAt", json_string(start));
    if (o->end_at) json_object_set_new(b, "endAt", json_string(end));
    int rc = call_json(cl, "POST", "/api/v1/monitors", b);
    return rc ? rc : answer(cl);
}

static int cmd_monitors(client *cl, opts *o)
{
    (void)o;
    path p = {0};
    p_add(&p, "/api/v1/monitors");
    return get_path(cl, &p);
}

static int cmd_monitor_stop(client *cl, opts *o)
{
    if (!o->monitor_id) return usage_error("monitor-stop: %s", "--monitor-id is required");
    path p = {0};
    p_add(&p, "/api/v1/monitors/");
    p_esc(&p, cl->c, o->monitor_id, 0);
    const char *s = p_str(&p);
    int rc = EX_API;
    if (s) {
        hreq r = {.method = "DELETE", .path = s};
        rc = call(cl, &r);
        if (!rc) rc = answer(cl);
    }
    sr_buf_release(&p.b);
    return rc;
}

static int cmd_monitor_values(client *cl, opts *o)
{
    if (!o->monitor_id) return usage_error("monitor-values: %s", "--monitor-id is required");
    path p = {0};
    p_add(&p, "/api/v1/monitors/");
    p_esc(&p, cl->c, o->monitor_id, 0);
    p_add(&p, "/values");
    p_param(&p, cl->c, "after", o->after);
    return get_path(cl, &p);
}

static int cmd_control(client *cl, opts *o)
{
    if (o->nids != 1 || !o->value) return usage_error("control: %s", "one --data-id and --value are required");
    json_t *v = json_loads(o->value, JSON_DECODE_ANY, NULL);
    if (!v) v = json_string(o->value); /* a bare word */
    if (!v) return usage_error("control: --value '%s' is not UTF-8", o->value);
    json_t *b = json_pack("{s:s,s:o}", "dataId", o->ids[0], "value", v);
    if (o->protection) {
        json_error_t je;
        json_t *p = json_loads(o->protection, 0, &je);
        if (!json_is_object(p)) {
            json_decref(p);
            json_decref(b);
            return usage_error("control: --protection must be a JSON object, not '%s'", o->protection);
        }
        json_object_set_new(b, "protection", p);
    }
    if (gw_timeout(cl, o, b)) {
        json_decref(b);
        return EX_USAGE;
    }
    int rc = call_json(cl, "POST", o->async ? "/api/v1/control-values?async=true" : "/api/v1/control-values", b);
    return rc ? rc : answer(cl);
}

static int cmd_certificate(client *cl, opts *o)
{
    const char *s = o->pos[1], *id = o->npos > 2 ? o->pos[2] : NULL;
    if (strcmp(s, "platform") && strcmp(s, "app") && strcmp(s, "gateway"))
        return usage_error("certificate: platform, app or gateway, not '%s'", s);
    if (!id && strcmp(s, "platform")) return usage_error("certificate %s: the ID is required", s);
    path p = {0};
    p_add(&p, "/api/v1/certificates/");
    p_add(&p, s);
    p_add(&p, "/");
    p_esc(&p, cl->c, id ? id : "platform", 0); /* the platform's own id */
    return get_path(cl, &p);
}

static int cmd_request(client *cl, opts *o)
{
    if (!o->request_id) return usage_error("request: %s", "--request-id is required");
    path p = {0};
    p_add(&p, "/api/v1/requests/");
    p_esc(&p, cl->c, o->request_id, 0);
    return get_path(cl, &p);
}

/* ---- commands: stored values ------------------------------------------------- */

/* The stored-values query of what ("raw", "latest", "downsample") */
static void values_path(path *p, CURL *c, const opts *o, const char *what)
{
    p_add(p, !strcmp(what, "latest") ? "/api/v1/stored-values/latest" : "/api/v1/stored-values");
    for (size_t i = 0; i < o->nids; i++) p_param(p, c, "dataId", o->ids[i]);
    if (!strcmp(what, "latest")) return;
    p_param(p, c, "from", o->from);
    p_param(p, c, "to", o->to);
    p_param(p, c, "limit", o->limit);
    p_param(p, c, "order", o->order);
    if (!strcmp(what, "downsample")) {
        p_param(p, c, "interval", o->interval);
        p_param(p, c, "agg", o->agg);
        p_param(p, c, "fill", o->fill);
    }
}

static int check_query(const char *cmd, const opts *o)
{
    unsigned long long x;
    if (!o->nids) return usage_error("%s: --data-id is required", cmd);
    if (o->limit && num_opt("limit", o->limit, 1, 100000, &x)) return EX_USAGE;
    if (o->order && strcmp(o->order, "asc") && strcmp(o->order, "desc"))
        return usage_error("--order: asc or desc, not '%s'", o->order);
    if (o->fill && strcmp(o->fill, "none") && strcmp(o->fill, "null") && strcmp(o->fill, "previous") &&
        strcmp(o->fill, "linear"))
        return usage_error("--fill: none, null, previous or linear, not '%s'", o->fill);
    return 0;
}

/* --all: follow nextCursor until null; print one {values:[...]} */
static int stored_all(client *cl, const opts *o)
{
    json_t *all = json_array();
    char *cursor = NULL;
    int rc = 0;
    for (;;) {
        path p = {0};
        values_path(&p, cl->c, o, "raw");
        p_param(&p, cl->c, "cursor", cursor);
        const char *s = p_str(&p);
        hreq r = {.method = "GET", .path = s};
        rc = s ? call(cl, &r) : EX_API;
        sr_buf_release(&p.b);
        if (rc) break;
        if (cl->status != 200) {
            rc = answer(cl); /* the error, as the server sent it */
            break;
        }
        json_t *page = json_loadb((const char *)cl->body.data, cl->body.len, 0, NULL);
        json_t *vals = json_object_get(page, "values"), *next = json_object_get(page, "nextCursor");
        if (!json_is_array(vals) || (next && !json_is_null(next) && !json_is_string(next))) {
            fprintf(stderr, "suiro apsim: a stored-values page without values[] / nextCursor\n");
            json_decref(page);
            rc = EX_API;
            break;
        }
        json_array_extend(all, vals);
        const char *nc = json_string_value(next);
        if (nc && cursor && !strcmp(nc, cursor)) {
            fprintf(stderr, "suiro apsim: the server gave the same nextCursor twice (%s)\n", nc);
            json_decref(page);
            rc = EX_API;
            break;
        }
        free(cursor);
        cursor = nc ? strdup(nc) : NULL;
        json_decref(page);
        if (!cursor) break;
    }
    free(cursor);
    if (!rc) {
        json_t *o2 = json_pack("{s:O}", "values", all);
        print_json(stdout, o2, cl->o->pretty);
        fflush(stdout);
        json_decref(o2);
    }
    json_decref(all);
    return rc;
}

static int cmd_stored_values(client *cl, opts *o)
{
    int rc = check_query("stored-values", o);
    if (rc) return rc;
    if (o->all) return stored_all(cl, o);
    path p = {0};
    values_path(&p, cl->c, o, "raw");
    return get_path(cl, &p);
}

static int cmd_latest(client *cl, opts *o)
{
    int rc = check_query("latest", o);
    if (rc) return rc;
    path p = {0};
    values_path(&p, cl->c, o, "latest");
    return get_path(cl, &p);
}

static int cmd_downsample(client *cl, opts *o)
{
    int rc = check_query("downsample", o);
    if (rc) return rc;
    if (!o->interval || !o->agg) return usage_error("downsample: %s", "--interval and --agg are required");
    path p = {0};
    values_path(&p, cl->c, o, "downsample");
    return get_path(cl, &p);
}

/* ---- commands: documents ------------------------------------------------------- */

/* the whole of f into b (at most max bytes) */
static int slurp(FILE *f, sr_buf *b, size_t max)
{
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        if (b->len + n > max || sr_buf_append(b, tmp, n)) return -1;
    return ferror(f) ? -1 : 0;
}

static int cmd_doc_put(client *cl, opts *o)
{
    if (o->json && o->file) return usage_error("doc-put: %s", "--json or --file, not both");
    if (o->if_match && !o->id) return usage_error("doc-put: %s", "--if-match goes with --id (an update)");
    sr_buf doc;
    sr_buf_init(&doc);
    if (o->json) {
        if (sr_buf_append(&doc, o->json, strlen(o->json))) return EX_API;
    } else {
        FILE *f = o->file && strcmp(o->file, "-") ? fopen(o->file, "rb") : stdin;
        if (!f) {
            fprintf(stderr, "suiro apsim: %s: %s\n", o->file, strerror(errno));
            return EX_USAGE;
        }
        int bad = slurp(f, &doc, MAX_STDIN);
        if (f != stdin) fclose(f);
        if (bad) {
            fprintf(stderr, "suiro apsim: cannot read the document (%s; at most 64 MiB)\n",
                    o->file ? o->file : "stdin");
            sr_buf_release(&doc);
            return EX_USAGE;
        }
    }
    path p = {0};
    p_add(&p, "/api/v1/documents/");
    p_esc(&p, cl->c, o->pos[1], 0);
    if (o->id) {
        p_add(&p, "/");
        p_esc(&p, cl->c, o->id, 0);
    }
    char im[300];
    snprintf(im, sizeof im, "If-Match: %s", o->if_match ? o->if_match : "");
    const char *s = p_str(&p);
    int rc = EX_API;
    if (s) {
        hreq r = {.method = o->id ? "PUT" : "POST", .path = s, .data = doc.len ? doc.data : (const void *)"",
                  .len = doc.len, .ctype = "application/json", .hdr = {o->if_match ? im : NULL}};
        rc = call(cl, &r);
        if (!rc) rc = answer(cl);
    }
    sr_buf_release(&p.b);
    sr_buf_release(&doc);
    return rc;
}

static int cmd_doc_get(client *cl, opts *o)
{
    path p = {0};
    p_add(&p, "/api/v1/documents/");
    p_esc(&p, cl->c, o->pos[1], 0);
    p_add(&p, "/");
    p_esc(&p, cl->c, o->pos[2], 0);
    int rc = get_path(cl, &p);
    if (cl->etag[0]) fprintf(stderr, "revision: %s\n", cl->etag); /* stdout stays the document */
    return rc;
}

static int cmd_doc_query(client *cl, opts *o)
{
    if (!o->field != !o->value) return usage_error("doc-query: %s", "--field and --value go together");
    path p = {0};
    p_add(&p, "/api/v1/documents/");
    p_esc(&p, cl->c, o->pos[1], 0);
    if (o->field) {
        p_add(&p, "?");
        p_esc(&p, cl->c, o->field, 0);
        p_add(&p, "=");
        p_esc(&p, cl->c, o->value, 0);
    }
    return get_path(cl, &p);
}

static int cmd_doc_delete(client *cl, opts *o)
{
    path p = {0};
    p_add(&p, "/api/v1/documents/");
    p_esc(&p, cl->c, o->pos[1], 0);
    p_add(&p, "/");
    p_esc(&p, cl->c, o->pos[2], 0);
    char im[300];
    snprintf(im, sizeof im, "If-Match: %s", o->if_match ? o->if_match : "");
    const char *s = p_str(&p);
    int rc = EX_API;
    if (s) {
        hreq r = {.method = "DELETE", .path = s, .hdr = {o->if_match ? im : NULL}};
        rc = call(cl, &r);
        if (!rc) rc = answer(cl);
    }
    sr_buf_release(&p.b);
    return rc;
}

/* ---- commands: files ------------------------------------------------------------ */

static void file_path(path *p, CURL *c, const char *fp)
{
    while (*fp == '/') fp++;
    p_add(p, "/api/v1/files/");
    p_esc(p, c, fp, 1);
}

/* One part of the file being uploaded: [start, start+len). The whole file is
 * hashed once, in order, as libcurl reads it: bytes read again after a
 * rewind (libcurl retrying on a fresh connection) are not hashed twice. */
typedef struct upload {
    FILE *f;
    const char *name;
    curl_off_t start, len, pos;
    sr_sha256_ctx sha;
    curl_off_t hashed; /* bytes [0, hashed) of the file are in sha */
    int failed;
} upload;

static size_t up_read(char *buf, size_t size, size_t n, void *ud)
{
    upload *u = ud;
    size_t want = size * n;
    curl_off_t left = u->len - u->pos;
    if ((curl_off_t)want > left) want = (size_t)left;
    if (!want) return 0;
    size_t got = fread(buf, 1, want, u->f);
    if (got < want) {
        fprintf(stderr, "suiro apsim: %s: %s\n", u->name, ferror(u->f) ? strerror(errno) : "the file got shorter");
        u->failed = 1;
        return CURL_READFUNC_ABORT;
    }
    curl_off_t at = u->start + u->pos;
    if (at <= u->hashed && at + (curl_off_t)got > u->hashed) {
        size_t skip = (size_t)(u->hashed - at);
        if (sr_sha256_update(&u->sha, buf + skip, got - skip)) {
            u->failed = 1;
            return CURL_READFUNC_ABORT;
        }
        u->hashed = at + (curl_off_t)got;
    }
    u->pos += (curl_off_t)got;
    return got;
}

static int up_seek(void *ud, curl_off_t off, int origin)
{
    upload *u = ud;
    if (origin != SEEK_SET || off < 0 || off > u->len) return CURL_SEEKFUNC_CANTSEEK;
    if (fseeko(u->f, (off_t)(u->start + off), SEEK_SET)) return CURL_SEEKFUNC_FAIL;
    u->pos = off;
    return CURL_SEEKFUNC_OK;
}

static int cmd_file_put(client *cl, opts *o)
{
    unsigned long long part = DEFAULT_PART_SIZE;
    if (!o->file) return usage_error("file-put: %s", "--file is required");
    if (o->part_size && num_opt("part-size", o->part_size, 1, 1ull << 40, &part)) return EX_USAGE;
    upload u = {.name = o->file};
    struct stat st;
    if (!(u.f = fopen(o->file, "rb")) || fstat(fileno(u.f), &st) || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "suiro apsim: %s: %s\n", o->file, u.f ? "not a regular file" : strerror(errno));
        if (u.f) fclose(u.f);
        return EX_USAGE;
    }
    if (sr_sha256_init(&u.sha)) {
        fclose(u.f);
        fprintf(stderr, "suiro apsim: cannot start SHA-256\n");
        return EX_API;
    }
    curl_off_t total = (curl_off_t)st.st_size;
    path p = {0};
    file_path(&p, cl->c, o->pos[1]);
    const char *s = p_str(&p);
    int rc = s ? 0 : EX_API;
    char ct[300], range[120];
    snprintf(ct, sizeof ct, "%s", o->content_type ? o->content_type : "application/octet-stream");
    int parts = total > (curl_off_t)part;
    for (curl_off_t off = 0; !rc && (off < total || (off == 0 && total == 0));) {
        curl_off_t len = total - off > (curl_off_t)part ? (curl_off_t)part : total - off;
        u.start = off;
        u.len = len;
        u.pos = 0;
        if (fseeko(u.f, (off_t)off, SEEK_SET)) {
            fprintf(stderr, "suiro apsim: %s: %s\n", o->file, strerror(errno));
            rc = EX_API;
            break;
        }
        snprintf(range, sizeof range, "Content-Range: bytes %lld-%lld/%lld", (long long)off,
                 (long long)(off + len - 1), (long long)total);
        hreq r = {.method = "PUT", .path = s, .ctype = ct, .hdr = {parts ? range : NULL},
                  .read = up_read, .seek = up_seek, .read_ud = &u, .read_len = len};
        if ((rc = call(cl, &r))) break;
        if (u.failed) {
            rc = EX_API;
            break;
        }
        off += len;
        int last = off >= total;
        if (cl->status == 202 && !last) {
            /* a part accepted: check the server counted what we sent */
            json_t *j = json_loadb((const char *)cl->body.data, cl->body.len, 0, NULL);
            json_t *rcv = json_object_get(j, "received");
            int ok = !rcv || (json_is_integer(rcv) && json_integer_value(rcv) == (json_int_t)off);
            json_decref(j);
            if (!ok) {
                answer(cl);
                fprintf(stderr, "suiro apsim: the server received a different count than the %lld bytes sent\n",
                        (long long)off);
                rc = EX_API;
            }
            if (o->verbose) fprintf(stderr, "apsim: %lld of %lld bytes sent\n", (long long)off, (long long)total);
            continue;
        }
        if (cl->status != 201 || !last) {
            rc = answer(cl);
            if (!rc) {
                fprintf(stderr, "suiro apsim: HTTP %ld %s\n", cl->status,
                        last ? "for the last part (201 expected)" : "before the last part (202 expected)");
                rc = EX_API;
            }
            break;
        }
        if (total == 0) break;
    }
    if (!rc) {
        /* the final answer: {path, size, sha256}; its checksum must be ours */
        uint8_t h[32];
        char hex[65] = "";
        if (!sr_sha256_final(&u.sha, h)) sr_hex(h, 32, hex);
        json_t *j = json_loadb((const char *)cl->body.data, cl->body.len, 0, NULL);
        const char *sh = json_string_value(json_object_get(j, "sha256"));
        json_t *sz = json_object_get(j, "size");
        int bad = (sh && strcasecmp(sh, hex)) || (sz && (!json_is_integer(sz) || json_integer_value(sz) != total)) ||
                  u.hashed != total;
        json_decref(j);
        rc = answer(cl);
        if (bad) {
            fprintf(stderr, "suiro apsim: the server's size/sha256 differ from the file's (%lld bytes, sha256 %s)\n",
                    (long long)total, hex);
            rc = EX_API;
        }
    }
    sr_sha256_release(&u.sha);
    fclose(u.f);
    sr_buf_release(&p.b);
    return rc;
}

/* A download: the bytes of a 2xx answer go to out as they arrive (hashed);
 * any other answer is kept in the body buffer to be printed. */
typedef struct download {
    client *cl;
    FILE *out;
    const char *name;
    int decided, ok;
    sr_sha256_ctx sha;
    curl_off_t size;
    int failed;
} download;

static size_t down_write(char *p, size_t size, size_t n, void *ud)
{
    download *d = ud;
    size_t len = size * n;
    if (!d->decided) {
        long code = 0;
        curl_easy_getinfo(d->cl->c, CURLINFO_RESPONSE_CODE, &code);
        d->ok = code >= 200 && code < 300;
        d->decided = 1;
    }
    if (!d->ok) {
        sr_buf *b = &d->cl->body;
        if (b->len + len > MAX_ERROR_BODY || sr_buf_append(b, p, len)) {
            fprintf(stderr, "suiro apsim: the error answer is too large\n");
            d->failed = 1;
            return 0;
        }
        return len;
    }
    if (fwrite(p, 1, len, d->out) != len || sr_sha256_update(&d->sha, p, len)) {
        fprintf(stderr, "suiro apsim: %s: %s\n", d->name, strerror(errno));
        d->failed = 1;
        return 0;
    }
    d->size += (curl_off_t)len;
    return len;
}

/* GET s streamed to --out (a temporary file beside it, renamed once
 * complete; then one JSON line {key: val, size, sha256, out}) or to stdout;
 * an error answer is printed as the server sent it */
static int download_to(client *cl, const opts *o, const char *s, const char *key, const char *val)
{
    download d = {.cl = cl, .out = stdout, .name = "stdout"};
    char *tmp = NULL;
    if (o->out && strcmp(o->out, "-")) {
        size_t l = strlen(o->out);
        int fd = -1;
        if ((tmp = malloc(l + 8))) {
            memcpy(tmp, o->out, l);
            memcpy(tmp + l, ".XXXXXX", 8);
            fd = mkstemp(tmp);
        }
        if (fd < 0 || !(d.out = fdopen(fd, "wb"))) {
            fprintf(stderr, "suiro apsim: %s: %s\n", o->out, strerror(errno));
            if (fd >= 0) {
                close(fd);
                unlink(tmp);
            }
            free(tmp);
            return EX_USAGE;
        }
        d.name = o->out;
    }
    if (sr_sha256_init(&d.sha)) {
        fprintf(stderr, "suiro apsim: cannot start SHA-256\n");
        if (tmp) {
            fclose(d.out);
            unlink(tmp);
            free(tmp);
        }
        return EX_API;
    }
    int rc = EX_API;
    if (s) {
        hreq r = {.method = "GET", .path = s, .write = down_write, .write_ud = &d};
        rc = call(cl, &r);
    }
    if (!rc && d.failed) rc = EX_API;
    if (!rc && !d.ok) rc = answer(cl); /* an error answer (or an empty 2xx) */
    if (tmp) {
        if (fclose(d.out) && !rc) {
            fprintf(stderr, "suiro apsim: %s: %s\n", o->out, strerror(errno));
            rc = EX_API;
        }
        if (!rc && rename(tmp, o->out)) {
            fprintf(stderr, "suiro apsim: %s: %s\n", o->out, strerror(errno));
            rc = EX_API;
        }
        if (rc) unlink(tmp);
        if (!rc) {
            uint8_t h[32];
            char hex[65] = "";
            if (!sr_sha256_final(&d.sha, h)) sr_hex(h, 32, hex);
            json_t *j = json_pack("{s:s,s:I,s:s,s:s}", key, val, "size", (json_int_t)d.size, "sha256", hex, "out",
                                  o->out);
            print_json(stdout, j, o->pretty);
            json_decref(j);
        }
    } else
        fflush(stdout);
    sr_sha256_release(&d.sha);
    free(tmp);
    return rc;
}

static int cmd_file_get(client *cl, opts *o)
{
    path p = {0};
    file_path(&p, cl->c, o->pos[1]);
    int rc = download_to(cl, o, p_str(&p), "path", o->pos[1]);
    sr_buf_release(&p.b);
    return rc;
}

/* (ext) the stored values as CSV (docs/csv.md), raw or (--interval) downsampled,
 * streamed to --out or stdout */
static int cmd_export(client *cl, opts *o)
{
    int rc = check_query("export", o);
    if (rc) return rc;
    if (o->limit || o->order) return usage_error("export: %s", "a CSV export is the whole range: no --limit, --order");
    if (o->agg && !o->interval) return usage_error("export: %s", "--agg goes with --interval");
    path p = {0};
    values_path(&p, cl->c, o, o->interval ? "downsample" : "raw");
    p_param(&p, cl->c, "format", "csv");
    if (o->bom) p_param(&p, cl->c, "bom", "1");
    rc = download_to(cl, o, p_str(&p), "export", "csv");
    sr_buf_release(&p.b);
    return rc;
}

static int cmd_file_list(client *cl, opts *o)
{
    path p = {0};
    p_add(&p, "/api/v1/files");
    p_param(&p, cl->c, "prefix", o->prefix);
    return get_path(cl, &p);
}

static int cmd_file_delete(client *cl, opts *o)
{
    path p = {0};
    file_path(&p, cl->c, o->pos[1]);
    const char *s = p_str(&p);
    int rc = EX_API;
    if (s) {
        hreq r = {.method = "DELETE", .path = s};
        rc = call(cl, &r);
        if (!rc) rc = answer(cl);
    }
    sr_buf_release(&p.b);
    return rc;
}

/* ---- load: the read benchmark ------------------------------------------------ */

typedef struct lconn {
    CURL *e;
    sr_buf body;
    double t0;
    int parked; /* --rate: done, waiting for its next slot */
} lconn;

static uint64_t fnv1a64(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int relative_time(const char *t) { return t && (t[0] == '-' || !strcmp(t, "now")); }

/* --save-body: the first answer's bytes, as they came */
static int save_body(const char *file, const sr_buf *b)
{
    FILE *f = fopen(file, "wb");
    int bad = !f || (b->len && fwrite(b->data, 1, b->len, f) != b->len);
    if (f && fclose(f)) bad = 1;
    if (bad) fprintf(stderr, "suiro apsim: load --save-body %s: %s\n", file, strerror(errno));
    return bad ? EX_API : EX_OK;
}

/* load: C keep-alive connections (libcurl multi, one thread) repeat one GET
 * for --requests N or --duration S and print one JSON line. The query is an
 * AP-IF stored-values query (--what, after a login) or, with --get-url, any
 * URL with the given --header lines and no session (the peers of
 * bench/ap_query.sh are measured by this same loop). Only 200 answers count
 * as done; the first is kept (--save-body writes it out) and hashed, and each
 * later one is compared with it: for a static query a difference is an error.
 * --rate R paces the load: the k-th request (from 0) is issued no earlier
 * than k/R s after the start (a connection done before its slot waits,
 * parked), so a server that keeps up answers R requests a second whatever
 * its speed -- the same requests in the same time for two servers compared
 * (bench/ap_audit_cost.sh). */
static int cmd_load(client *cl, opts *o)
{
    unsigned long long nreq = 0, conns = 8;
    double duration = 0, rate = 0;
    int generic = o->get_url != NULL, rc;
    const char *what = generic ? "get" : o->what ? o->what : "latest";
    if (generic) {
        if (o->what || o->nids || o->from || o->to || o->limit || o->order || o->interval || o->agg || o->fill)
            return usage_error("load --get-url: %s", "the URL is the whole query (no --what, --data-id, --from ...)");
        if (strncmp(o->get_url, "http://", 7) && strncmp(o->get_url, "https://", 8))
            return usage_error("--get-url: http://HOST:PORT/PATH or https://..., not '%s'", o->get_url);
    } else {
        if (o->nheaders) return usage_error("load: %s", "--header goes with --get-url");
        if (strcmp(what, "latest") && strcmp(what, "raw") && strcmp(what, "downsample"))
            return usage_error("load --what: latest, raw or downsample, not '%s'", what);
        if ((rc = check_query("load", o))) return rc;
    }
    if (o->requests && o->duration) return usage_error("load: %s", "--requests or --duration, not both");
    if (o->requests && num_opt("requests", o->requests, 1, 1ull << 40, &nreq)) return EX_USAGE;
    if (o->duration) {
        char *end;
        duration = strtod(o->duration, &end);
        if (*end || !(duration > 0) || duration > 86400)
            return usage_error("--duration: seconds, 0 < S <= 86400, not '%s'", o->duration);
    }
    if (!nreq && !duration) duration = 10;
    if (o->rate) {
        char *end;
        rate = strtod(o->rate, &end);
        if (*end || !(rate > 0) || rate > 1e7)
            return usage_error("--rate: requests a second, 0 < R <= 10000000, not '%s'", o->rate);
    }
    if (o->connections && num_opt("connections", o->connections, 1, 1024, &conns)) return EX_USAGE;
    if (!strcmp(what, "downsample") && (!o->interval || !o->agg))
        return usage_error("load --what downsample: %s", "--interval and --agg are required");
    if (nreq && conns > nreq) conns = nreq;
    /* a static query must answer the same bytes every time */
    int is_static = !o->changing && !relative_time(o->from) && !relative_time(o->to);

    if (!generic && !cl->auth[0] && (rc = login(cl, 0))) return rc;
    path p = {0};
    sr_buf url;
    sr_buf_init(&url);
    if (generic) {
        if (sr_buf_append(&url, o->get_url, strlen(o->get_url) + 1)) return EX_API;
    } else {
        values_path(&p, cl->c, o, what);
        const char *s = p_str(&p);
        if (!s || sr_buf_append(&url, cl->base, strlen(cl->base)) || sr_buf_append(&url, s, strlen(s) + 1)) {
            sr_buf_release(&url);
            sr_buf_release(&p.b);
            return EX_API;
        }
    }
    CURLM *m = curl_multi_init();
    lconn *k = calloc(conns, sizeof *k);
    size_t nlat = 0, caplat = 4096;
    double *lat = malloc(caplat * sizeof *lat);
    sr_buf first;
    sr_buf_init(&first);
    struct curl_slist *h = NULL;
    int hbad = 0;
    if (!generic && !(h = curl_slist_append(NULL, cl->auth))) hbad = 1;
    for (size_t i = 0; i < o->nheaders && !hbad; i++) {
        struct curl_slist *nh = curl_slist_append(h, o->headers[i]);
        if (!nh) hbad = 1;
        else h = nh;
    }
    if (!m || !k || !lat || hbad) {
        fprintf(stderr, "suiro apsim: out of memory\n");
        rc = EX_API;
        goto done;
    }
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)conns);
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)conns);
    unsigned long long issued = 0, done_n = 0, errors = 0, mismatches = 0, conn_errors = 0, streak = 0;
    curl_off_t bytes = 0;
    double t0 = mono_ms(), end_at = t0 + duration * 1000.0;
    for (size_t i = 0; i < conns; i++) {
        if (!(k[i].e = curl_easy_init())) {
            rc = EX_API;
            goto done;
        }
        sr_buf_init(&k[i].body);
        curl_easy_setopt(k[i].e, CURLOPT_URL, (const char *)url.data);
        common_setopts(k[i].e, cl, cl->timeout_ms);
        curl_easy_setopt(k[i].e, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(k[i].e, CURLOPT_WRITEFUNCTION, to_body);
        curl_easy_setopt(k[i].e, CURLOPT_WRITEDATA, &k[i].body);
        curl_easy_setopt(k[i].e, CURLOPT_PRIVATE, &k[i]);
        if (rate > 0 && (double)issued >= rate * (mono_ms() - t0) / 1000.0) {
            k[i].parked = 1; /* its slot is later */
            continue;
        }
        k[i].t0 = mono_ms();
        curl_multi_add_handle(m, k[i].e);
        issued++;
    }
    int running = 1, aborted = 0, have_first = 0;
    while (running || done_n < issued || rate > 0) {
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int q;
        while ((msg = curl_multi_info_read(m, &q))) {
            if (msg->msg != CURLMSG_DONE) continue;
            lconn *c = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
            double now = mono_ms();
            long code = 0;
            curl_easy_getinfo(c->e, CURLINFO_RESPONSE_CODE, &code);
            done_n++;
            if (nlat == caplat) {
                double *nl = realloc(lat, caplat * 2 * sizeof *lat);
                if (nl) {
                    lat = nl;
                    caplat *= 2;
                }
            }
            if (nlat < caplat) lat[nlat++] = now - c->t0;
            bytes += (curl_off_t)c->body.len;
            if (msg->data.result != CURLE_OK) {
                errors++;
                conn_errors++;
                if (++streak == 100 || conn_errors == 1)
                    fprintf(stderr, "suiro apsim: load: %s\n", curl_easy_strerror(msg->data.result));
                if (streak >= 100) aborted = 1;
            } else if (code != 200) {
                errors++;
                streak = 0;
                if (errors - conn_errors == 1)
                    fprintf(stderr, "suiro apsim: load: HTTP %ld %.*s\n", code,
                            (int)(c->body.len > 300 ? 300 : c->body.len), (const char *)c->body.data);
            } else if (!c->body.len || (!generic && c->body.data[0] != '{')) {
                errors++; /* empty, or not a JSON object: whatever it is, not an answer */
                streak = 0;
            } else if (!have_first) {
                /* the first body: kept; from the AP-IF it must be a {"values":[...]} answer */
                streak = 0;
                have_first = 1;
                if (!generic) {
                    json_t *j = json_loadb((const char *)c->body.data, c->body.len, 0, NULL);
                    if (!json_is_array(json_object_get(j, "values"))) {
                        fprintf(stderr, "suiro apsim: load: the answer is not {\"values\":[...]}\n");
                        errors++;
                        aborted = 1;
                    }
                    json_decref(j);
                }
                if (sr_buf_append(&first, c->body.data, c->body.len)) {
                    errors++;
                    aborted = 1;
                }
            } else {
                streak = 0;
                if (c->body.len != first.len || memcmp(c->body.data, first.data, first.len)) {
                    mismatches++;
                    if (is_static) errors++;
                }
            }
            curl_multi_remove_handle(m, c->e);
            c->body.len = 0;
            int more = !aborted && (nreq ? issued < nreq : now < end_at);
            if (more && rate > 0 && (double)issued >= rate * (now - t0) / 1000.0) {
                c->parked = 1; /* before its slot: issued by the loop below */
            } else if (more) {
                c->t0 = mono_ms();
                curl_multi_add_handle(m, c->e);
                issued++;
                running = 1;
            }
        }
        int wait_ms = 100;
        if (rate > 0) { /* the parked connections whose slot came */
            double now = mono_ms();
            int more = !aborted && (nreq ? issued < nreq : now < end_at), parked = 0;
            for (size_t i = 0; i < conns; i++) {
                if (!k[i].parked) continue;
                if (!more) {
                    k[i].parked = 0;
                    continue;
                }
                if ((double)issued < rate * (now - t0) / 1000.0) {
                    k[i].parked = 0;
                    k[i].t0 = now;
                    curl_multi_add_handle(m, k[i].e);
                    issued++;
                    running = 1;
                    more = nreq ? issued < nreq : 1;
                } else {
                    parked = 1;
                }
            }
            if (parked) { /* until the next slot */
                double next = t0 + (double)issued * 1000.0 / rate - now;
                wait_ms = next < 1 ? 1 : next > 100 ? 100 : (int)next;
            } else if (done_n >= issued) {
                break;
            }
        } else if (done_n >= issued) {
            break;
        }
        curl_multi_poll(m, NULL, 0, wait_ms, NULL);
    }
    double secs = (mono_ms() - t0) / 1000.0;
    qsort(lat, nlat, sizeof *lat, cmp_d);
    double p50 = nlat ? lat[nlat / 2] : 0, p99 = nlat ? lat[nlat * 99 / 100] : 0;
    printf("{\"bench\":\"apsim_load\",\"what\":\"%s\",\"connections\":%llu,\"requests\":%llu,\"errors\":%llu,"
           "\"secs\":%.3f,\"req_per_s\":%.0f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"bytes\":%lld,"
           "\"body_bytes\":%zu,\"verify\":\"%016llx\",\"static\":%s,\"identical\":%s}\n",
           what, conns, done_n, errors, secs, secs > 0 ? (double)done_n / secs : 0.0, p50, p99, (long long)bytes,
           first.len, (unsigned long long)fnv1a64(first.data, first.len), is_static ? "true" : "false",
           mismatches ? "false" : "true");
    fflush(stdout);
    rc = conn_errors && conn_errors == done_n ? EX_CONN : errors || !done_n ? EX_API : EX_OK;
    if (o->save_body && have_first) {
        int src = save_body(o->save_body, &first);
        if (!rc) rc = src;
    }
done:
    for (size_t i = 0; k && i < conns; i++) {
        if (!k[i].e) continue;
        curl_multi_remove_handle(m, k[i].e);
        curl_easy_cleanup(k[i].e);
        sr_buf_release(&k[i].body);
    }
    if (m) curl_multi_cleanup(m);
    curl_slist_free_all(h);
    free(k);
    free(lat);
    sr_buf_release(&first);
    sr_buf_release(&url);
    sr_buf_release(&p.b);
    return rc;
}

/* ---- the command table and the entry ------------------------------------------ */

typedef struct cmddef {
    const char *name;
    int minpos, maxpos; /* arguments after the command name */
    const char *opts;   /* " name " of each command option it takes */
    int (*run)(client *, opts *);
} cmddef;

static const cmddef CMDS[] = {
    {"login", 0, 0, "", cmd_login},
    {"logout", 0, 0, "", cmd_logout},
    {"masters", 1, 1, " parent ", cmd_masters},
    {"current-values", 0, 0, " data-id async ", cmd_current_values},
    {"monitor-start", 0, 0, " data-id interval-ms start-at end-at ", cmd_monitor_start},
    {"monitors", 0, 0, "", cmd_monitors},
    {"monitor-stop", 0, 0, " monitor-id ", cmd_monitor_stop},
    {"monitor-values", 0, 0, " monitor-id after ", cmd_monitor_values},
    {"control", 0, 0, " data-id value protection async ", cmd_control},
    {"certificate", 1, 2, "", cmd_certificate},
    {"request", 0, 0, " request-id ", cmd_request},
    {"stored-values", 0, 0, " data-id from to limit order all ", cmd_stored_values},
    {"latest", 0, 0, " data-id ", cmd_latest},
    {"downsample", 0, 0, " data-id from to interval agg fill ", cmd_downsample},
    {"export", 0, 0, " data-id from to interval agg fill bom out ", cmd_export},
    {"doc-put", 1, 1, " id if-match json file ", cmd_doc_put},
    {"doc-get", 2, 2, "", cmd_doc_get},
    {"doc-query", 1, 1, " field value ", cmd_doc_query},
    {"doc-delete", 2, 2, " if-match ", cmd_doc_delete},
    {"file-put", 1, 1, " file content-type part-size ", cmd_file_put},
    {"file-get", 1, 1, " out ", cmd_file_get},
    {"file-list", 0, 0, " prefix ", cmd_file_list},
    {"file-delete", 1, 1, "", cmd_file_delete},
    {"load", 0, 0,
     " what data-id requests duration connections rate from to limit order interval agg fill changing get-url header"
     " save-body ",
     cmd_load},
};

/* an environment variable; empty is unset */
static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static int run(opts *o)
{
    const cmddef *cd = NULL;
    for (size_t i = 0; i < sizeof CMDS / sizeof *CMDS; i++)
        if (!strcmp(CMDS[i].name, o->pos[0])) cd = &CMDS[i];
    if (!cd) return usage_error("unknown command '%s'", o->pos[0]);
    int nargs = o->npos - 1;
    if (nargs < cd->minpos) {
        fprintf(stderr, "suiro apsim %s: missing arguments (suiro apsim --help)\n", cd->name);
        return EX_USAGE;
    }
    if (nargs > cd->maxpos) {
        fprintf(stderr, "suiro apsim %s: unexpected argument '%s' (suiro apsim --help)\n", cd->name,
                o->pos[1 + cd->maxpos]);
        return EX_USAGE;
    }
    for (int i = 0; i < o->ngiven; i++) {
        char key[40];
        snprintf(key, sizeof key, " %s ", o->given[i]);
        if (!strstr(cd->opts, key)) {
            fprintf(stderr, "suiro apsim %s: option --%s does not apply (suiro apsim --help)\n", cd->name, o->given[i]);
            return EX_USAGE;
        }
    }
    /* the session: environment, then defaults */
    if (!o->url) o->url = env("SUIRO_URL");
    if (!o->url) o->url = DEFAULT_URL;
    if (!o->token) o->token = env("SUIRO_TOKEN");
    if (!o->secret) o->secret = env("SUIRO_APP_SECRET");
    if (!o->op) o->op = "demo";
    if (!o->app) o->app = "APP001";
    int is_login = cd->run == cmd_login, is_logout = cd->run == cmd_logout;
    if (is_login && !o->secret) return usage_error("login: %s", "--secret (or SUIRO_APP_SECRET) is required");
    if (is_logout && !o->token) return usage_error("logout: %s", "--token (or SUIRO_TOKEN) is required");
    int sessionless = cd->run == cmd_load && o->get_url; /* load --get-url: another system, no session */
    if (!is_login && !sessionless && !o->token && !o->secret)
        return usage_error("%s", "--secret (or SUIRO_APP_SECRET) to log in, or --token (or SUIRO_TOKEN)");
    if (strncmp(o->url, "http://", 7) && strncmp(o->url, "https://", 8))
        return usage_error("--url: http://HOST:PORT or https://HOST:PORT, not '%s'", o->url);

    client cl = {.o = o};
    unsigned long long t;
    if (o->timeout_ms && cd->run != cmd_current_values && cd->run != cmd_control) {
        if (num_opt("timeout-ms", o->timeout_ms, 1, 86400000, &t)) return EX_USAGE;
        cl.timeout_ms = (long)t;
    }
    size_t ul = strlen(o->url);
    while (ul && o->url[ul - 1] == '/') ul--;
    if (ul >= sizeof cl.base) return usage_error("--url: too long (%s)", o->url);
    memcpy(cl.base, o->url, ul);
    if (o->token && !is_login) {
        if (strlen(o->token) > sizeof cl.auth - 32 || strpbrk(o->token, "\r\n"))
            return usage_error("--token: %s", "not a token");
        snprintf(cl.auth, sizeof cl.auth, "Authorization: Bearer %s", o->token);
    }
    cl.no_session = is_login || is_logout;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) || !(cl.c = curl_easy_init())) {
        fprintf(stderr, "suiro apsim: cannot start libcurl\n");
        return EX_API;
    }
    sr_buf_init(&cl.body);
    int rc = cd->run(&cl, o);
    if (cl.own_session) {
        /* log out; its failure is reported on stderr so stdout keeps the answer */
        int lrc = logout(&cl);
        if (!lrc && cl.status != 204) {
            fprintf(stderr, "suiro apsim: logout: HTTP %ld %.*s\n", cl.status,
                    (int)(cl.body.len > 300 ? 300 : cl.body.len), (const char *)cl.body.data);
            lrc = EX_API;
        }
        if (!rc) rc = lrc;
    }
    sr_buf_release(&cl.body);
    curl_easy_cleanup(cl.c);
    curl_global_cleanup();
    return rc;
}

int sr_cmd_apsim(const sr_command *cmd, int argc, char **argv)
{
    opts o = {0};
    sr_args a;
    int rc = sr_opts_parse(cmd, argc, argv, &o, &a);
    if (rc == SR_OPTS_HELP) rc = 0;
    else if (!rc) {
        for (int i = 0; i < a.npos; i++) o.pos[o.npos++] = a.pos[i];
        for (int i = NCOMMON; sr_opts_apsim[i].name; i++)
            if (i < 64 && (a.seen >> i & 1) && o.ngiven < MAX_GIVEN) o.given[o.ngiven++] = sr_opts_apsim[i].name;
        rc = run(&o);
    }
    for (size_t i = 0; i < o.nids; i++) free(o.ids[i]);
    free(o.ids);
    return rc;
}
