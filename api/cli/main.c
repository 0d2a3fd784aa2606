/* api/cli/main.c -- the `suiro` command: the command table and dispatch.
 *
 * To add a command: one row in COMMANDS below ({name, handler, arguments,
 * min/max arguments, one-line doc, options table, more usage text}) and its
 * handler with its options table in a cmd_*.c file (declared in cli.h). The
 * row drives the dispatch, `suiro --help`, `suiro NAME --help` and the
 * option parsing (opts.h); nothing else lists commands. The table ends with
 * the hook SR_TEST_COMMANDS, empty here: the test build suiro-tabletest adds
 * a row through it (tests/support/tabletest.h, test_tables). `suiro routes`
 * prints the one list of routes (sr_route_lists, api/routes.h); `suiro man`
 * prints the manual pages from this table and the config table (cmd_man.c). */
#include "api/cli/cli.h"
#include "api/metrics.h"
#include "api/routes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SUIRO_VERSION
#define SUIRO_VERSION "0.0.0"
#endif
#ifndef SUIRO_COMMIT
#define SUIRO_COMMIT "unknown"
#endif

static int cmd_version(const sr_command *cmd, int argc, char **argv);
static int cmd_routes(const sr_command *cmd, int argc, char **argv);

#define KEY_NOTE "Commands on a data directory take --key-file F when the log is encrypted.\n"
#define VERIFY_EXIT                                                                                            \
    "exit: 0 intact, 1 corruption (named), 3 torn tail only (the next writable open cuts it),\n"              \
    "      4 unreadable (missing, not a suiro directory, newer format, no or wrong key), 2 usage\n"

#ifndef SR_TEST_COMMANDS
#define SR_TEST_COMMANDS /* the test build's extra rows (tests/support/tabletest.h) */
#endif

static const sr_command COMMANDS[] = {
    {"init", sr_cmd_init, "DIR", 1, 1, "create a data directory (the only command that creates one)", sr_opts_init,
     NULL},
    {"sheet import", sr_cmd_sheet_import, "FILE DIR", 2, 2, "apply a set-up sheet (all-or-nothing, idempotent)",
     sr_opts_sheet_import, NULL},
    {"sheet export", sr_cmd_sheet_export, "DIR", 1, 1, "print an operator's set-up as a sheet (no secrets)",
     sr_opts_sheet_export, NULL},
    {"rebuild", sr_cmd_rebuild, "DIR", 1, 1, "drop the index and rebuild it from the log", sr_opts_rebuild, NULL},
    {"replay", sr_cmd_replay, "DIR", 1, 1, "decoded events as JSON lines (dataIds, RFC 3339 times)", sr_opts_replay,
     "TIME: RFC 3339 with Z or an offset (2026-11-22T14:21:00+09:00, fractions of a second),\n"
     "      now, or now minus -30s, -10m, -1h, -2d, -500ms (decimals allowed: -1.5h).\n"
     "--from is inclusive, --to exclusive (times: the event's ingest time).\n"},
    {"state", sr_cmd_state, "DIR", 1, 1, "what the platform and its apps saw at a past time (docs/state.md)",
     sr_opts_state,
     "TIME: RFC 3339 with Z or an offset, now, or -1h (as replay's); the state after every event\n"
     "whose ingest time is at or before it: masters, gateways, apps, grants, latest values,\n"
     "running monitors, pending requests, connected gateways and apps, open alarms.\n"},
    {"verify", sr_cmd_verify, "DIR", 1, 1, "check the log's chain, that the index equals a rebuild, every blob",
     sr_opts_verify, VERIFY_EXIT},
    {"audit verify", sr_cmd_audit_verify, "DIR", 1, 1,
     "check a data directory or a backup against its signed checkpoints (the tree from the log's blocks)",
     sr_opts_audit_verify,
     "DIR: a data directory (served or stopped: read-only) or a backup (DEST/NAME of `suiro backup`).\n"
     "No key is needed: the tree's leaves are the sealed blocks. The checkpoints: the index's, and the\n"
     "notes of --checkpoints FILE; each one's signature against --cert (default DIR/platform-cert.pem).\n"
     "exit: 0 all holds, 1 broken (the first broken record and the checkpoint that disproves it),\n"
     "      3 all holds but a torn tail (a crash mid-append; the next writable open cuts it),\n"
     "      4 unreadable (not a suiro directory, no certificate, nothing to check against), 2 usage\n"},
    {"backup", sr_cmd_backup, "DIR DEST", 2, 2, "an online backup of DIR into the backup set DEST (signed, incremental)",
     sr_opts_backup,
     "DEST: a directory of backups of this data directory (created if missing); each backup is DEST/NAME.\n"
     "A served DIR is backed up by its server (--url/--token or SUIRO_URL/SUIRO_TOKEN), into its\n"
     "[backup] directory, which must be DEST. docs/backup.md says what a restore needs.\n"},
    {"restore", sr_cmd_restore, "BACKUP DIR", 2, 2, "check a backup, then restore it into a new data directory",
     sr_opts_restore,
     "BACKUP: DEST/NAME of `suiro backup`. DIR must not exist or be empty.\n"
     "TIME: RFC 3339, now, or -30s, -10m, -1h (the event's ingest time).\n"},
    {"report incident", sr_cmd_report_incident, "DIR", 1, 1,
     "an incident report of a time window: connections, requests, controls, alarms, refusals, changes, values",
     sr_opts_report_incident,
     "TIME: RFC 3339 with Z or an offset, now, or now minus -30s, -10m, -1h, -2d (the event's ingest time;\n"
     "      both ends inclusive). JSON by default; --format html: one self-contained page with a timeline\n"
     "      and a chart per point. The same report as GET /admin/v1/reports/incident (docs/incident-report.md).\n"},
    {"cert import", sr_cmd_cert_import, "DIR", 1, 1, "register an app's or a gateway's certificate",
     sr_opts_cert_import, "One of --app and --gateway; --operator and --pem are required.\n"},
    {"log verify", sr_cmd_log_verify, "DIR", 1, 1, "check every block, checksum and the hash chain of the log",
     sr_opts_log_verify,
     "DIR: a data directory, or a log directory (one holding the *.seg files).\n" VERIFY_EXIT},
    {"log dump", sr_cmd_log_dump, "DIR", 1, 1, "print the log's records as JSON lines", sr_opts_log_dump,
     "DIR: a data directory, or a log directory (one holding the *.seg files).\n"
     "One JSON object per record: {\"seq\":N,\"len\":L,\"hex\":\"...\"}.\n"},
    {"log append", sr_cmd_log_append, "DIR", 1, 1, "append each line of stdin as a record, as one durable batch",
     sr_opts_log_append,
     "DIR: a log directory (one holding *.seg files), or an existing empty directory to start a log in.\n"
     "A data directory is refused: its log holds events only.\n"},
    {"key list", sr_cmd_key_list, "DIR", 1, 1, "the keyring's keys as JSON lines (metadata, never a key)",
     sr_opts_key_list, "On a data directory no server holds (docs/keys.md \"Running it\").\n"},
    {"key rotate", sr_cmd_key_rotate, "DIR", 1, 1, "start a new epoch of an operator's data, audit or config key",
     sr_opts_key_rotate, NULL},
    {"key rotate-master", sr_cmd_key_rotate_master, "DIR", 1, 1,
     "re-wrap the keyring under a new master key (no log byte rewritten)", sr_opts_key_rotate_master,
     "Then set key_file (or --key-file) to the new key's source before the next start.\n"},
    {"key export", sr_cmd_key_export, "DIR FILE", 2, 2, "write the wrapped keyring to FILE (a key backup)",
     sr_opts_key_export, "FILE is new (never overwritten), mode 0600; it holds no key readable without the master.\n"},
    {"key import", sr_cmd_key_import, "DIR FILE", 2, 2, "restore the keys of a key export the keyring lacks",
     sr_opts_key_import, NULL},
    {"cluster dump", sr_cmd_cluster_dump, "", 0, 0, "a partition's events from its JetStream stream, as JSON lines",
     sr_opts_cluster_dump,
     "FILE: a cluster node's configuration ([cluster] nats, name, partitions). One line a message:\n"
     "{stream, sseq, subject, partition, msgid, node, seq, operator, kind, event} (docs/cluster.md);\n"
     "a sealed payload adds key (its stream key) and is opened with FILE's [engine] key_file\n"
     "(docs/keys.md \"Cluster: stream keys\"; not opened: error says why, event is null).\n"},
    {"cluster verify", sr_cmd_cluster_verify, "", 0, 0,
     "check the streams (sound, per node in order) and that they equal the owners' indexes",
     sr_opts_cluster_verify,
     "Per partition: every message decodes, its headers agree with it, per node the seqs grow (a\n"
     "Msg-Id twice is a duplicate: counted, not an error); then each data point's values in the\n"
     "stream (count, order-independent hash) against the owner's index: --url (GET\n"
     "/admin/v1/cluster/partitions/{p}/digest of the node owning it) or --data DIR (read-only).\n"
     "exit: 0 sound and equal, 1 broken (one line per difference: partition, point, counts),\n"
     "      3 NATS or the servers unreachable (or no owner), 4 --data unreadable, 2 usage\n"},
    {"cluster audit", sr_cmd_cluster_audit, "", 0, 0, "an operator's audit rows from its partition's stream",
     sr_opts_cluster_audit,
     "One JSON object a line: the columns of GET /admin/v1/audit/events and the node that wrote it.\n"
     "TIME: RFC 3339 with Z or an offset, now, or -30s, -10m, -1h, -2d (the event's ingest time;\n"
     "      --from inclusive, --to exclusive).\n"},
    {"cluster keys", sr_cmd_cluster_keys, "", 0, 0, "the stream keys of the cluster's keys' bucket (metadata only)",
     sr_opts_cluster_keys,
     "One JSON line a key of <name>_KEYS: id, operator, class, epoch, period_days, from, to (its\n"
     "epoch's UTC ms range; null: never ends), state, created, destroyed, master (docs/keys.md\n"
     "\"Cluster: stream keys\"). No key is unwrapped: no key_file needed.\n"},
    {"cluster erase", sr_cmd_cluster_erase, "", 0, 0, "destroy a stream key: its payloads open nowhere any more",
     sr_opts_cluster_erase,
     "Needs FILE's [engine] key_file (the cluster's master key). The entry becomes a tombstone (no\n"
     "key bytes); running nodes stop using the key within 30 s. Config keys are never erased.\n"
     "exit: 0 destroyed (or already), 1 not found or refused, 3 NATS unreachable, 2 usage\n"},
    {"serve", sr_cmd_serve, "", 0, 0, "run the server (GW-IF over MQTT and HTTP, AP-IF)", sr_opts_serve,
     "Options override the file; the file overrides the defaults (docs/configuration.md).\n"
     "The data directory must exist: `suiro init DIR` creates it.\n"},
    {"gwsim sheet", sr_cmd_gwsim_sheet, "", 0, 0, "print a set-up sheet of simulated gateways", sr_opts_gwsim_sheet,
     NULL},
    {"gwsim run", sr_cmd_gwsim_run, "", 0, 0, "run simulated gateways against a server (MQTT or HTTP)",
     sr_opts_gwsim_run, "The options are described at the top of api/cli/cmd_gwsim.c.\n"},
    {"apsim", sr_cmd_apsim, "COMMAND [ARGS]", 1, 4, "the app stub: one AP-IF call per command, and `load`",
     sr_opts_apsim, sr_apsim_more},
    {"admin", sr_cmd_admin, "COMMAND [ARGS]", 1, 4, "the Admin API's client (/admin/v1): login, users, operators, ...",
     sr_opts_admin, sr_admin_more},
    {"routes", cmd_routes, "", 0, 0, "the HTTP routes (METHOD PATH), as docs/api/openapi.yaml has them", NULL,
     NULL},
    {"version", cmd_version, "", 0, 0, "print the version and the git commit it was built from", NULL, NULL},
    {"man", sr_cmd_man, "[PAGE]", 0, 1, "print a manual page as roff, made from these tables: suiro(1), suiro.ini(5)",
     NULL, "PAGE: suiro (the default: every command and option) or suiro.ini (every configuration key).\n"
           "To read one: suiro man suiro.ini | man -l -\n"},
    SR_TEST_COMMANDS
};
enum { NCOMMANDS = sizeof COMMANDS / sizeof COMMANDS[0] };

const sr_command *sr_cli_commands(size_t *n)
{
    *n = NCOMMANDS;
    return COMMANDS;
}

const char *sr_cli_version(void) { return SUIRO_VERSION; }

static void usage(FILE *f)
{
    fprintf(f, "usage: suiro <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++) {
        char head[64];
        snprintf(head, sizeof head, "%s%s%s", COMMANDS[i].name, COMMANDS[i].args[0] ? " " : "", COMMANDS[i].args);
        fprintf(f, "  %-24s %s\n", head, COMMANDS[i].doc);
    }
    fprintf(f, "\n" KEY_NOTE "Options: --opt VALUE or --opt=VALUE, anywhere on the line.\n"
               "`suiro <command> --help` for its options. Documentation: docs/ in the source tree.\n");
}

/* the commands of a group ("log"): for `suiro log` and `suiro log --help` */
static void group_usage(FILE *f, const char *group)
{
    fprintf(f, "usage: suiro %s <subcommand> [options]\n\nsubcommands:\n", group);
    size_t gl = strlen(group);
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (!strncmp(COMMANDS[i].name, group, gl) && COMMANDS[i].name[gl] == ' ') {
            char head[64];
            snprintf(head, sizeof head, "%s%s%s", COMMANDS[i].name, COMMANDS[i].args[0] ? " " : "",
                     COMMANDS[i].args);
            fprintf(f, "  %-24s %s\n", head, COMMANDS[i].doc);
        }
    fprintf(f, "\n`suiro %s <subcommand> --help` for its options.\n", group);
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

static int cmd_version(const sr_command *cmd, int argc, char **argv)
{
    sr_args a;
    int rc = sr_opts_parse(cmd, argc, argv, NULL, &a);
    if (rc) return rc == SR_OPTS_HELP ? 0 : rc;
    printf("suiro %s (commit %s)\n", SUIRO_VERSION, SUIRO_COMMIT);
    return 0;
}

static int cmd_routes(const sr_command *cmd, int argc, char **argv)
{
    sr_args a;
    int rc = sr_opts_parse(cmd, argc, argv, NULL, &a);
    if (rc) return rc == SR_OPTS_HELP ? 0 : rc;
    for (size_t l = 0; l < sr_nroute_lists; l++)
        for (size_t i = 0; i < *sr_route_lists[l].n; i++)
            printf("%s %s\n", sr_route_lists[l].rows[i].method, sr_route_lists[l].rows[i].path);
    for (size_t i = 0; i < sr_metrics_npaths; i++) printf("GET %s\n", sr_metrics_paths[i]); /* api/metrics.h */
    return 0;
}

int sr_cli_run(int argc, char **argv)
{
    if (argc < 1) {
        usage(stderr);
        return 2;
    }
    const char *a1 = argv[0];
    if (!strcmp(a1, "--help") || !strcmp(a1, "-h") || !strcmp(a1, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(a1, "--version")) a1 = "version";
    int group = 0;
    for (size_t i = 0; i < NCOMMANDS; i++) {
        const sr_command *c = &COMMANDS[i];
        if (!strcmp(c->name, a1)) return c->run(c, argc, argv);
        size_t l = strlen(a1);
        if (!strncmp(c->name, a1, l) && c->name[l] == ' ') {
            group = 1;
            if (argc > 1 && !strcmp(c->name + l + 1, argv[1])) return c->run(c, argc - 1, argv + 1);
        }
    }
    if (group) {
        if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            group_usage(stdout, a1);
            return 0;
        }
        if (argc > 1) fprintf(stderr, "suiro %s: unknown subcommand '%s'\n\n", a1, argv[1]);
        group_usage(stderr, a1);
        return 2;
    }
    fprintf(stderr, "suiro: unknown command '%s'\nTry 'suiro --help'.\n", a1);
    return 2;
}

int main(int argc, char **argv) { return sr_cli_run(argc - 1, argv + 1); }
