/* api/cli/opts.c -- see opts.h. A thin layer over getopt_long: the
 * struct option array and the short-option string are built from the
 * command's table, getopt's own messages are off (opterr = 0) and ours name
 * the argument as it was written. */
#include "api/cli/opts.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum { LONG_ONLY = 1000 };

static size_t count_opts(const sr_opt *t)
{
    size_t n = 0;
    while (t && t[n].name) n++;
    return n;
}

int sr_opts_error(const sr_command *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "suiro %s: ", cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'suiro %s --help'.\n", cmd->name);
    return 2;
}

static void opt_line(FILE *f, char s, const char *name, const char *arg, const char *doc)
{
    char head[80];
    int n;
    if (s) n = snprintf(head, sizeof head, "-%c, --%s%s%s", s, name, arg ? " " : "", arg ? arg : "");
    else n = snprintf(head, sizeof head, "    --%s%s%s", name, arg ? " " : "", arg ? arg : "");
    if (n < 26) fprintf(f, "  %-26s %s\n", head, doc);
    else fprintf(f, "  %s\n  %-26s %s\n", head, "", doc);
}

void sr_opts_usage(const sr_command *cmd, FILE *f)
{
    size_t n = count_opts(cmd->opts);
    fprintf(f, "usage: suiro %s%s%s%s\n", cmd->name, cmd->args[0] ? " " : "", cmd->args, " [options]");
    fprintf(f, "%s\n\noptions:\n", cmd->doc);
    for (size_t i = 0; i < n; i++)
        opt_line(f, cmd->opts[i].short_name, cmd->opts[i].name, cmd->opts[i].arg, cmd->opts[i].doc);
    opt_line(f, 'h', "help", NULL, "print this help and exit");
    if (cmd->more) fprintf(f, "\n%s", cmd->more);
}

/* the row of getopt's val, or -1 */
static int row_of(const sr_opt *t, size_t n, int val)
{
    if (val >= LONG_ONLY && (size_t)(val - LONG_ONLY) < n) return val - LONG_ONLY;
    for (size_t i = 0; i < n; i++)
        if (t[i].short_name && t[i].short_name == val) return (int)i;
    return -1;
}

int sr_opts_parse(const sr_command *cmd, int argc, char **argv, void *o, sr_args *a)
{
    const sr_opt *t = cmd->opts;
    size_t n = count_opts(t);
    memset(a, 0, sizeof *a);
    struct option *lo = calloc(n + 2, sizeof *lo);
    char *shorts = malloc(2 * n + 5);
    if (!lo || !shorts) {
        free(lo);
        free(shorts);
        fprintf(stderr, "suiro %s: out of memory\n", cmd->name);
        return 1;
    }
    size_t k = 0;
    shorts[k++] = '-'; /* arguments in order as code 1, options anywhere, whatever POSIXLY_CORRECT says */
    shorts[k++] = ':'; /* a missing value returns ':' */
    shorts[k++] = 'h';
    for (size_t i = 0; i < n; i++) {
        lo[i] = (struct option){t[i].name, t[i].arg ? required_argument : no_argument, NULL,
                                t[i].short_name ? t[i].short_name : LONG_ONLY + (int)i};
        if (t[i].short_name) {
            shorts[k++] = t[i].short_name;
            if (t[i].arg) shorts[k++] = ':';
        }
    }
    shorts[k] = 0;
    lo[n] = (struct option){"help", no_argument, NULL, 'h'};
    int rc = 0, c;
    opterr = 0;
    optind = 0; /* GNU: start afresh (a second parse in one process) */
    while (!rc && (c = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
        const char *as_written = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
        if (c == 1) {
            if (a->npos >= cmd->max_args || a->npos >= SR_OPTS_MAX_POS)
                rc = sr_opts_error(cmd, "unexpected argument '%s'", optarg);
            else
                a->pos[a->npos++] = optarg;
            continue;
        }
        if (c == 'h') {
            sr_opts_usage(cmd, stdout);
            rc = SR_OPTS_HELP;
            break;
        }
        int r = row_of(t, n, c == ':' || c == '?' ? optopt : c);
        if (c == ':') {
            rc = sr_opts_error(cmd, "option '%s' needs a value%s%s", as_written, r >= 0 ? ": " : "",
                               r >= 0 ? t[r].arg : "");
            break;
        }
        if (c == '?') {
            if (r >= 0 && !t[r].arg) rc = sr_opts_error(cmd, "option '--%s' takes no value", t[r].name);
            else if (optopt && optopt < LONG_ONLY && as_written[0] == '-' && as_written[1] != '-')
                rc = sr_opts_error(cmd, "unknown option '-%c'", optopt);
            else {
                /* "--name=value": name the option only */
                const char *eq = strchr(as_written, '=');
                int len = eq ? (int)(eq - as_written) : (int)strlen(as_written);
                rc = sr_opts_error(cmd, "unknown option '%.*s'", len, as_written);
            }
            break;
        }
        if (r < 0) {
            rc = sr_opts_error(cmd, "unknown option '%s'", as_written);
            break;
        }
        if (r < 64) a->seen |= (uint64_t)1 << r;
        if (t[r].fn) rc = t[r].fn(o, optarg);
        else if (t[r].arg) *(const char **)((char *)o + t[r].off) = optarg;
        else *(int *)((char *)o + t[r].off) = 1;
    }
    if (!rc) { /* after "--" */
        for (int i = optind; i < argc; i++) {
            if (a->npos >= cmd->max_args || a->npos >= SR_OPTS_MAX_POS) {
                rc = sr_opts_error(cmd, "unexpected argument '%s'", argv[i]);
                break;
            }
            a->pos[a->npos++] = argv[i];
        }
    }
    if (!rc && a->npos < cmd->min_args)
        rc = sr_opts_error(cmd, "missing argument%s: suiro %s %s", cmd->min_args > 1 ? "s" : "", cmd->name,
                           cmd->args);
    free(lo);
    free(shorts);
    optind = 0;
    return rc;
}
