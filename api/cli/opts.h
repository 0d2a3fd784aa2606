/*
 * api/cli/opts.h -- the one option parser of the `suiro` command.
 *
 * Every command (and subcommand) is one row of the command table in
 * api/cli/main.c: its name, its handler, its positional arguments, a
 * one-line doc and its options table. The handler parses its arguments with
 * sr_opts_parse over getopt_long, which gives every command the same
 * conventions:
 *   - `--opt value` and `--opt=value`; `-h` / `--help` everywhere (usage on
 *     stdout, exit 0, nothing else done);
 *   - an unknown option, a missing value, a value given to a flag, a missing
 *     or a stray argument: one line naming it and a hint on stderr, exit 2;
 *   - the usage text (`suiro CMD --help`) and the command list (`suiro
 *     --help`) are generated from the same rows.
 */
#ifndef SR_CLI_OPTS_H
#define SR_CLI_OPTS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* One option. The value is stored at off in the handler's own options
 * struct: an int set to 1 for a flag (arg == NULL), a const char * (the
 * argv string) for an option with a value, or given to fn when fn is set
 * (for repeated options; fn prints its own message and returns an exit code,
 * 0 to go on). Tables end with a row whose name is NULL. */
typedef struct sr_opt {
    const char *name;  /* long name, without "--" */
    char short_name;   /* 0: none ('h' is help, always) */
    const char *arg;   /* value name in the usage ("FILE"); NULL: a flag, no value */
    const char *doc;   /* one line */
    size_t off;        /* where to store it (offsetof in the handler's struct) */
    int (*fn)(void *o, const char *value);
} sr_opt;

#define SR_OPT_FLAG(n, s, st, f, doc) {n, s, NULL, doc, offsetof(st, f), NULL}
#define SR_OPT_STR(n, s, arg, st, f, doc) {n, s, arg, doc, offsetof(st, f), NULL}
#define SR_OPT_FN(n, s, arg, fn, doc) {n, s, arg, doc, 0, fn}
#define SR_OPT_END {NULL, 0, NULL, NULL, 0, NULL}

struct sr_command;
/* A handler: argv[0] is the command's last word ("verify" of `log verify`),
 * its arguments follow. Returns the exit code. */
typedef int (*sr_cmd_fn)(const struct sr_command *cmd, int argc, char **argv);

/* One row of the command table (api/cli/main.c). */
typedef struct sr_command {
    const char *name;   /* "replay", or "log verify" for a subcommand */
    sr_cmd_fn run;
    const char *args;   /* positional arguments in the usage ("DIR", "FILE DIR"), or "" */
    int min_args, max_args;
    const char *doc;    /* one line, for `suiro --help` and the usage */
    const sr_opt *opts; /* NULL: none besides --help */
    const char *more;   /* more usage text after the options (exit codes, notes), or NULL */
} sr_command;

enum { SR_OPTS_MAX_POS = 8, SR_OPTS_HELP = -1 };

typedef struct sr_args {
    const char *pos[SR_OPTS_MAX_POS]; /* the positional arguments, in order */
    int npos;
    uint64_t seen; /* bit i: row i of the options table was given (rows 0..63) */
} sr_args;

/* Parse argc/argv (argv[0] the command word) against cmd's options into o.
 * Returns 0; SR_OPTS_HELP after printing the usage on stdout (exit 0); or 2
 * after printing what is wrong on stderr (or fn's nonzero exit code). */
int sr_opts_parse(const sr_command *cmd, int argc, char **argv, void *o, sr_args *a);
/* The usage of cmd: "usage: suiro NAME ARGS [options]", the doc, the options, more. */
void sr_opts_usage(const sr_command *cmd, FILE *f);
/* A usage error: "suiro NAME: <message>" and the --help hint on stderr; returns 2. */
int sr_opts_error(const sr_command *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
