/* api/cli/cli.h -- subcommands of the `suiro` binary. Each takes the
 * arguments after its name and returns the process exit code. */
#ifndef SR_CLI_H
#define SR_CLI_H

int sr_cmd_log(int argc, char **argv);
int sr_cmd_serve(int argc, char **argv);
int sr_cmd_gwsim(int argc, char **argv);
/* the app stub: every AP-IF call from the command line, and `load` */
int sr_cmd_apsim(int argc, char **argv);
/* init, sheet, rebuild, replay, verify; -1 if name is none of them. */
int sr_cmd_engine(const char *name, int argc, char **argv);

/* Shared: parse an unsigned decimal; 0 on success. */
int sr_cli_parse_u64(const char *s, unsigned long long *out);

#endif
