/* api/cli/cli.h -- the commands of the `suiro` binary. Each is a row of the
 * command table in main.c ({name, handler, arguments, doc, options table});
 * the handlers and their options tables live in the cmd_*.c files. A handler
 * gets its row and the arguments from its own name on, parses them with
 * sr_opts_parse (opts.h) and returns the process exit code. */
#ifndef SR_CLI_H
#define SR_CLI_H

#include "api/cli/opts.h"

#include <limits.h>
#include <stdint.h>

/* cmd_log.c */
int sr_cmd_log_verify(const sr_command *cmd, int argc, char **argv);
int sr_cmd_log_dump(const sr_command *cmd, int argc, char **argv);
int sr_cmd_log_append(const sr_command *cmd, int argc, char **argv);
extern const sr_opt sr_opts_log_verify[], sr_opts_log_dump[], sr_opts_log_append[];
/* cmd_serve.c */
int sr_cmd_serve(const sr_command *cmd, int argc, char **argv);
extern const sr_opt sr_opts_serve[];
/* cmd_gwsim.c: the gateway simulator */
int sr_cmd_gwsim_sheet(const sr_command *cmd, int argc, char **argv);
int sr_cmd_gwsim_run(const sr_command *cmd, int argc, char **argv);
extern const sr_opt sr_opts_gwsim_sheet[], sr_opts_gwsim_run[];
/* cmd_apsim.c: the app stub, every AP-IF call from the command line, and `load` */
int sr_cmd_apsim(const sr_command *cmd, int argc, char **argv);
extern const sr_opt sr_opts_apsim[];
extern const char sr_apsim_more[];
/* cmd_admin.c: the Admin API's client (libcurl) */
int sr_cmd_admin(const sr_command *cmd, int argc, char **argv);
extern const sr_opt sr_opts_admin[];
extern const char sr_admin_more[];
/* cmd_engine.c: init, sheet, rebuild, replay, verify, cert */
int sr_cmd_init(const sr_command *cmd, int argc, char **argv);
int sr_cmd_sheet_import(const sr_command *cmd, int argc, char **argv);
int sr_cmd_sheet_export(const sr_command *cmd, int argc, char **argv);
int sr_cmd_rebuild(const sr_command *cmd, int argc, char **argv);
int sr_cmd_replay(const sr_command *cmd, int argc, char **argv);
int sr_cmd_state(const sr_command *cmd, int argc, char **argv);
int sr_cmd_verify(const sr_command *cmd, int argc, char **argv);
/* api/cli/cmd_audit.c: a directory or a backup against its signed checkpoints (docs/audit.md) */
int sr_cmd_audit_verify(const sr_command *cmd, int argc, char **argv);
extern const sr_opt sr_opts_audit_verify[];
int sr_cmd_cert_import(const sr_command *cmd, int argc, char **argv);
/* cmd_engine.c: suiro key (the keyring, docs/keys.md) */
int sr_cmd_key_list(const sr_command *cmd, int argc, char **argv);
int sr_cmd_key_rotate(const sr_command *cmd, int argc, char **argv);
int sr_cmd_key_rotate_master(const sr_command *cmd, int argc, char **argv);
int sr_cmd_key_export(const sr_command *cmd, int argc, char **argv);
int sr_cmd_key_import(const sr_command *cmd, int argc, char **argv);
extern const sr_opt sr_opts_key_list[], sr_opts_key_rotate[], sr_opts_key_rotate_master[], sr_opts_key_export[],
    sr_opts_key_import[];
extern const sr_opt sr_opts_init[], sr_opts_sheet_import[], sr_opts_sheet_export[], sr_opts_rebuild[],
    sr_opts_replay[], sr_opts_state[], sr_opts_verify[], sr_opts_cert_import[];

/* cmd_man.c: `suiro man [PAGE]`, the manual pages as roff from the tables */
int sr_cmd_man(const sr_command *cmd, int argc, char **argv);

/* main.c: the command table (COMMANDS, its n rows) and the version, for
 * the manual page (cmd_man.c) */
const sr_command *sr_cli_commands(size_t *n);
const char *sr_cli_version(void);

/* main.c: run the command argv[0] (argv: the words after `suiro`) as main
 * does; its exit code. (sheet import and cert import run a `suiro admin`
 * command through it against a running server.) */
int sr_cli_run(int argc, char **argv);

/* A running server holds dir (its log is open for writing): run the `suiro
 * admin` command argv through its Admin API with url and token (NULL: from
 * SUIRO_URL / SUIRO_TOKEN) and return its exit code; without them, say so
 * naming the command and return 1. (sheet import, cert import, backup) */
int sr_cli_through_server(const char *name, const char *dir, const char *url, const char *token, char **argv,
                          int argc);

int sr_cmd_backup(const sr_command *cmd, int argc, char **argv);
/* `suiro report incident` (api/cli/cmd_report.c; docs/incident-report.md) */
int sr_cmd_report_incident(const sr_command *cmd, int argc, char **argv);
extern const sr_opt sr_opts_report_incident[];
int sr_cmd_restore(const sr_command *cmd, int argc, char **argv);
extern const sr_opt sr_opts_backup[], sr_opts_restore[];
/* api/cli/cmd_cluster.c: replay and verify per partition from the streams (docs/cluster.md) */
int sr_cmd_cluster_dump(const sr_command *cmd, int argc, char **argv);
int sr_cmd_cluster_verify(const sr_command *cmd, int argc, char **argv);
int sr_cmd_cluster_audit(const sr_command *cmd, int argc, char **argv);
int sr_cmd_cluster_keys(const sr_command *cmd, int argc, char **argv);
int sr_cmd_cluster_erase(const sr_command *cmd, int argc, char **argv);
extern const sr_opt sr_opts_cluster_dump[], sr_opts_cluster_verify[], sr_opts_cluster_audit[];
extern const sr_opt sr_opts_cluster_keys[], sr_opts_cluster_erase[];

/* Shared: parse an unsigned decimal; 0 on success. */
int sr_cli_parse_u64(const char *s, unsigned long long *out);

/* DIR must be a data directory made by `suiro init` (it has a log/
 * directory): 0; else one line on stderr naming cmd and dir (and that `suiro
 * init` creates one), -1. Nothing is created. */
int sr_cli_data_dir(const char *cmd, const char *dir);
/* The log directory of DIR for the `log` commands: DIR/log of a data
 * directory, or DIR itself when it holds log segments (*.seg); with
 * empty_ok, an existing empty directory too (`log append` starts a log
 * there). 0 and the path in out; else the reason in why, -1. */
int sr_cli_log_dir(const char *dir, int empty_ok, char out[PATH_MAX], char *why, size_t whylen);
/* What to do about an error rc of opening a log or an engine: for SR_EKEY
 * the --key-file advice (has_key: a key was given), else "". */
const char *sr_cli_key_hint(int rc, int has_key);
/* The keyring beside logdir (logdir/../keys/keyring, docs/keys.md) opened
 * with key, its resolver set in lo->keys; NULL (lo unchanged) without a key
 * or a keyring. sr_keyring_close it after the log. */
struct sr_keyring;
struct sr_log_opts;
struct sr_key;
struct sr_keyring *sr_cli_keyring(const char *logdir, const struct sr_key *key, struct sr_log_opts *lo);

/* verify and log verify share their verdicts, exit codes and JSON:
 * the exit code (0 intact, 1 corruption, 3 torn tail only, 4 unreadable)
 * and verdict ("ok", "corrupt", "torn-tail", "unreadable") of a
 * sr_log_verify result. */
struct sr_log_report;
struct sr_errinfo;
int sr_cli_log_verdict(int rc, const struct sr_log_report *rep, const char **verdict);
/* The JSON members both print (no braces): verdict, code, segments, blocks,
 * records, bytes, first_seq, last_seq, tip, erased_records, erased (one
 * object a key: key_id, sections, records, first_seq, last_seq),
 * unopened_records and, on an error, segment, offset, block_seq, error. */
void sr_cli_log_json(FILE *f, const char *verdict, int rc, const struct sr_log_report *rep,
                     const struct sr_errinfo *ei);
/* (And, for a log whose first segments were dropped, "trim": first_kept,
 * checked, event_seq, at_ms, records, interrupted_below; docs/keys.md
 * "Segments".)
 * The lines after a verified log's "ok:" line: "log starts at seq N;
 * segments below trimmed at T by event S" for a trimmed log, then one "erased: key 0x... N
 * records in M sections, seq A..B" a destroyed key met (docs/keys.md), and,
 * when no key was given at all, that the chain verified and the sealed
 * contents were not opened. */
void sr_cli_log_notes(FILE *f, const struct sr_log_report *rep);

#endif
