/*
 * api/cli/cmd_report.c -- `suiro report incident DIR --from T --to T
 * [--operator OP] [--gateway GW] [--point DATAID]... [--format json|html]
 * [-o FILE]` (issue #18, R-RE-4; docs/incident-report.md): the incident
 * report of a data directory, read-only (the engine opened read-only, as
 * `suiro replay` reads). The builder is the engine's (engine/report.c), the
 * writers api/report.c's: the same bytes as GET /admin/v1/reports/incident.
 *
 * Exit codes: 0 written; 1 the directory or the report could not be read
 * (or FILE written); 2 usage (a bad time, from after to, an unknown
 * operator, gateway or point: each named).
 */
#include "api/cli/cli.h"
#include "api/report.h"

#include "codecs/rfc3339.h"
#include "storage/crypto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct ropts {
    const char *keyfile, *op, *from, *to, *gateway, *format, *output, *cap;
    const char *points[SR_REPORT_FILTER_POINTS + 1];
    size_t npoints;
} ropts;

static int add_point(void *o, const char *v)
{
    ropts *r = o;
    if (r->npoints > SR_REPORT_FILTER_POINTS) return 0; /* counted once: refused after the parse */
    r->points[r->npoints++] = v;
    return 0;
}

const sr_opt sr_opts_report_incident[] = {
    SR_OPT_STR("from", 0, "TIME", ropts, from, "the window's start, inclusive (required)"),
    SR_OPT_STR("to", 0, "TIME", ropts, to, "the window's end, inclusive (required)"),
    SR_OPT_STR("operator", 0, "OP", ropts, op, "this operator's events only"),
    SR_OPT_STR("gateway", 0, "GW", ropts, gateway, "this gateway's connections, requests, alarms and points"),
    SR_OPT_FN("point", 0, "DATAID", add_point, "this data point (repeatable, at most 64; needs --operator)"),
    SR_OPT_STR("format", 0, "F", ropts, format, "json (default) or html"),
    SR_OPT_STR("output", 'o', "FILE", ropts, output, "write to FILE (default: standard output)"),
    SR_OPT_STR("cap", 0, "N", ropts, cap, "at most N items a section (default 1000, at most 100000)"),
    SR_OPT_STR("key-file", 0, "FILE", ropts, keyfile, "the log's key, if it is encrypted: FILE, env:VAR or cmd:COMMAND"),
    SR_OPT_END,
};

static int time_opt(const sr_command *cmd, const char *name, const char *v, int64_t now_ms, int64_t *out)
{
    if (!v) return sr_opts_error(cmd, "--%s is required", name);
    if (sr_time_parse(v, strlen(v), now_ms, out))
        return sr_opts_error(cmd, "--%s wants a time (2026-11-22T03:00:00Z, now, -1h), not '%s'", name, v);
    return 0;
}

int sr_cmd_report_incident(const sr_command *cmd, int argc, char **argv)
{
    ropts o = {0};
    sr_args a;
    int rc = sr_opts_parse(cmd, argc, argv, &o, &a);
    if (rc) return rc == SR_OPTS_HELP ? 0 : rc;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    sr_report_q q = {.op = o.op, .gateway = o.gateway, .points = o.points, .npoints = o.npoints};
    if ((rc = time_opt(cmd, "from", o.from, now_ms, &q.from_ms)) || (rc = time_opt(cmd, "to", o.to, now_ms, &q.to_ms)))
        return rc;
    if (q.from_ms > q.to_ms) return sr_opts_error(cmd, "--from is after --to");
    int fmt = sr_report_format_parse(o.format);
    if (fmt < 0) return sr_opts_error(cmd, "--format wants json or html, not '%s'", o.format);
    if (o.npoints > SR_REPORT_FILTER_POINTS) return sr_opts_error(cmd, "--point: at most %d", SR_REPORT_FILTER_POINTS);
    if (o.npoints && !o.op) return sr_opts_error(cmd, "--point needs --operator");
    if (o.cap) {
        unsigned long long n;
        if (sr_cli_parse_u64(o.cap, &n) || n < 1 || n > SR_REPORT_CAP_MAX)
            return sr_opts_error(cmd, "--cap wants an integer 1..%d, not '%s'", SR_REPORT_CAP_MAX, o.cap);
        q.cap = (size_t)n;
    }
    const char *dir = a.pos[0];
    if (sr_cli_data_dir(cmd->name, dir)) return 1;
    sr_key key;
    int has_key = 0;
    if (o.keyfile) {
        char err[256];
        if (sr_key_load(o.keyfile, &key, err, sizeof err)) {
            fprintf(stderr, "suiro %s: %s\n", cmd->name, err);
            return 2;
        }
        has_key = 1;
    }
    sr_engine_opts eo = {.key = has_key ? &key : NULL, .readonly = 1};
    sr_errinfo ei;
    sr_engine *e;
    if ((rc = sr_engine_open(dir, &eo, &e, &ei))) {
        fprintf(stderr, "suiro %s: %s: %s%s\n", cmd->name, dir, ei.msg[0] ? ei.msg : sr_strerror(rc),
                sr_cli_key_hint(rc, has_key));
        return 1;
    }
    sr_report *r = NULL;
    rc = sr_report_build(e, &q, &r, &ei);
    if (rc) {
        fprintf(stderr, "suiro %s: %s\n", cmd->name, ei.msg);
        sr_engine_close(e);
        return rc == SR_EINVAL || rc == SR_ENOTFOUND ? 2 : 1;
    }
    sr_buf out;
    sr_buf_init(&out);
    rc = fmt ? sr_report_html(r, &out) : sr_report_json_text(r, &out);
    if (!rc && !fmt) rc = sr_buf_append(&out, "\n", 1);
    sr_report_free(r);
    sr_engine_close(e);
    if (rc) {
        fprintf(stderr, "suiro %s: %s\n", cmd->name, sr_strerror(rc));
        sr_buf_release(&out);
        return 1;
    }
    FILE *f = o.output ? fopen(o.output, "wb") : stdout;
    int bad = !f || fwrite(out.data, 1, out.len, f) != out.len;
    if (f) bad |= o.output ? fclose(f) != 0 : fflush(f) != 0;
    if (bad) fprintf(stderr, "suiro %s: %s: %s\n", cmd->name, o.output ? o.output : "stdout", strerror(errno));
    sr_buf_release(&out);
    return bad ? 1 : 0;
}
