/* api/cli/main.c -- the `suiro` command: dispatch to subcommands. */
#include "api/cli/cli.h"
#include "api/routes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUIRO_VERSION "0.1.0"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: suiro <command> [options]\n"
            "\n"
            "commands:\n"
            "  log verify DIR [--key-file F] [--json]   check every block, checksum and the hash chain\n"
            "  log dump DIR [--from SEQ] [--count N] [--key-file F]\n"
            "                                           print records as JSON lines\n"
            "  log append DIR [--key-file F] < lines    append each line as a record, durably\n"
            "  serve [--config F] [--data DIR] [--mqtt HOST:PORT]   run the server (GW-IF over MQTT)\n"
            "  gwsim sheet|run ...                      the gateway simulator (suiro gwsim for usage)\n"
            "  apsim COMMAND ...                        the app stub: AP-IF calls, `load` (suiro apsim --help)\n"
            "  init [--demo] DIR                        create a data directory (--demo: the demo operator)\n"
            "  sheet import FILE DIR                    apply a set-up sheet (all-or-nothing, idempotent)\n"
            "  sheet export DIR --operator OP           the operator's set-up as a sheet\n"
            "  rebuild DIR [--discard-lost]             drop the index and rebuild it from the log\n"
            "  replay DIR [--from SEQ|TIME] [--to ..] [--operator OP] [--gateway GW] [--point ID] [--kind K]\n"
            "                                           decoded events as JSON lines\n"
            "  verify DIR                               log chain + index equals a rebuild\n"
            "  cert import DIR --operator OP (--app ID|--gateway ID) --pem FILE\n"
            "                                           register an app's or a gateway's certificate\n"
            "  routes                                   the HTTP routes (METHOD PATH), as docs/api/openapi.yaml has them\n"
            "  version                                  print the version\n"
            "Commands on a data directory take --key-file F when the log is encrypted.\n"
            "\n"
            "`suiro <command> --help` for more. Documentation: docs/ in the source tree.\n");
}

int sr_cli_parse_u64(const char *s, unsigned long long *out)
{
    if (!s || !*s || *s == '-') return -1;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || !end || *end) return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
        printf("suiro %s\n", SUIRO_VERSION);
        return 0;
    }
    if (!strcmp(argv[1], "routes")) {
        for (size_t i = 0; i < sr_nroutes; i++) printf("%s %s\n", sr_routes[i].method, sr_routes[i].path);
        return 0;
    }
    if (!strcmp(argv[1], "log")) return sr_cmd_log(argc - 2, argv + 2);
    if (!strcmp(argv[1], "serve")) return sr_cmd_serve(argc - 2, argv + 2);
    if (!strcmp(argv[1], "gwsim")) return sr_cmd_gwsim(argc - 2, argv + 2);
    if (!strcmp(argv[1], "apsim")) return sr_cmd_apsim(argc - 2, argv + 2);
    int rc = sr_cmd_engine(argv[1], argc - 2, argv + 2);
    if (rc >= 0) return rc;
    fprintf(stderr, "suiro: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
