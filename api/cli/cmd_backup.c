/* api/cli/cmd_backup.c -- `suiro backup DIR DEST` and `suiro restore BACKUP
 * DIR` (docs/backup.md; the engine's side is engine/backup.h).
 *
 * backup: on a directory no server holds, the engine is opened here and
 * the backup taken directly; on a served one (its log is locked), through
 * the server's Admin API (`suiro admin backup DEST`, POST /admin/v1/backups),
 * as `suiro sheet import` does. Progress (bytes, rate, ETA) on stderr when
 * it is a terminal; one JSON line on stdout at the end. Exit 0 done, 1
 * refused or failed (the reason on stderr), 2 usage. */
#include "api/cli/cli.h"

#include "codecs/jsonlex.h"
#include "codecs/rfc3339.h"
#include "engine/backup.h"
#include "storage/crypto.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct bopts {
    const char *keyfile, *platform_key, *keep, *to, *url, *token;
} bopts;

#define KEY_FILE SR_OPT_STR("key-file", 0, "FILE", bopts, keyfile, "the log's key, if it is encrypted: FILE, env:VAR or cmd:COMMAND")

const sr_opt sr_opts_backup[] = {
    KEY_FILE,
    SR_OPT_STR("keep", 0, "N", bopts, keep, "then remove the complete backups of DEST but the N newest"),
    SR_OPT_STR("platform-key", 0, "FILE", bopts, platform_key, "the signing key (default DIR/platform-key.pem)"),
    SR_OPT_STR("url", 0, "URL", bopts, url, "a running server's HTTP base URL [SUIRO_URL]"),
    SR_OPT_STR("token", 0, "TOKEN", bopts, token, "an admin session token of that server [SUIRO_TOKEN]"),
    SR_OPT_END,
};
const sr_opt sr_opts_restore[] = {
    KEY_FILE,
    SR_OPT_STR("platform-key", 0, "FILE", bopts, platform_key,
               "the platform's platform-key.pem or platform-cert.pem (required): checks the signature"),
    SR_OPT_STR("to", 0, "SEQ|TIME", bopts, to, "restore the state as of this seq or ingest time (the log cut there)"),
    SR_OPT_END,
};

static double mono_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

typedef struct prog {
    double t0;
    int tty;
} prog;

/* bytes, rate, ETA on one terminal line */
static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    prog *p = ctx;
    if (!p->tty) return;
    double dt = mono_s() - p->t0, rate = dt > 0 ? (double)done / dt : 0;
    double eta = rate > 0 && total > done ? (double)(total - done) / rate : 0;
    fprintf(stderr, "\r%.1f / %.1f MB  %.1f MB/s  ETA %.0f s   ", (double)done / 1e6, (double)total / 1e6, rate / 1e6,
            eta);
    if (done >= total) fputc('\n', stderr);
    fflush(stderr);
}

static int load_key(const char *name, const char *file, sr_key *k)
{
    char err[256];
    if (sr_key_load(file, k, err, sizeof err)) {
        fprintf(stderr, "suiro %s: %s\n", name, err);
        return 2;
    }
    return 0;
}

static void json_str(FILE *f, const char *s)
{
    sr_buf b;
    sr_buf_init(&b);
    if (sr_json_put_string(&b, s, strlen(s)) == SR_OK) fwrite(b.data, 1, b.len, f);
    sr_buf_release(&b);
}

/* the one JSON line of both commands */
static void print_json(const char *what, const char *path, const sr_backup_info *x, double secs)
{
    char tip[65];
    sr_hex(x->tip, 32, tip);
    printf("{\"%s\":", what);
    json_str(stdout, path);
    printf(",\"name\":");
    json_str(stdout, x->name);
    printf(",\"seq\":%" PRIu64 ",\"tip\":\"%s\",\"bytes\":%" PRIu64 ",\"files\":%" PRIu32, x->seq, tip, x->bytes,
           x->files);
    if (!strcmp(what, "backup")) {
        printf(",\"copied\":%" PRIu32 ",\"linked\":%" PRIu32 ",\"base\":", x->files_copied, x->files_linked);
        json_str(stdout, x->base);
    }
    printf(",\"seconds\":%.3f,\"mbPerS\":%.1f}\n", secs, secs > 0 ? (double)x->bytes / 1e6 / secs : 0.0);
}

int sr_cmd_backup(const sr_command *cmd, int argc, char **argv)
{
    bopts o = {0};
    sr_args a;
    int rc = sr_opts_parse(cmd, argc, argv, &o, &a);
    if (rc) return rc == SR_OPTS_HELP ? 0 : rc;
    const char *dir = a.pos[0], *dest = a.pos[1];
    unsigned long long keep = 0;
    if (o.keep && (sr_cli_parse_u64(o.keep, &keep) || keep < 1 || keep > 100000))
        return sr_opts_error(cmd, "--keep: a number of backups, 1 ... 100000");
    if (sr_cli_data_dir(cmd->name, dir)) return 1;
    sr_key key;
    int has_key = 0;
    if (o.keyfile) {
        if ((rc = load_key(cmd->name, o.keyfile, &key))) return rc;
        has_key = 1;
    }
    sr_engine_opts eo = {.key = has_key ? &key : NULL};
    sr_engine *e = NULL;
    sr_errinfo ei;
    memset(&ei, 0, sizeof ei);
    rc = sr_engine_open(dir, &eo, &e, &ei);
    if (rc == SR_ELOCKED) {
        /* served: the server takes it (into its [backup] directory, which
         * must be DEST) */
        char abs[PATH_MAX];
        if (dest[0] == '/') snprintf(abs, sizeof abs, "%s", dest);
        else {
            char cwd[PATH_MAX];
            if (!getcwd(cwd, sizeof cwd)) cwd[0] = 0;
            snprintf(abs, sizeof abs, "%s/%s", cwd, dest);
        }
        if (keep) fprintf(stderr, "suiro %s: --keep: the server keeps its [backup] keep count\n", cmd->name);
        char *av[] = {"admin", "backup", "--dest", abs, NULL};
        return sr_cli_through_server(cmd->name, dir, o.url, o.token, av, 4);
    }
    if (rc) {
        fprintf(stderr, "suiro %s: %s: %s%s\n", cmd->name, dir, ei.msg[0] ? ei.msg : sr_strerror(rc),
                sr_cli_key_hint(rc, has_key));
        return 1;
    }
    prog p = {.t0 = mono_s(), .tty = isatty(2)};
    sr_backup_opts bo = {.platform_key = o.platform_key, .source = "cli", .progress = on_progress, .progress_ctx = &p};
    sr_backup_info x;
    rc = sr_engine_backup(e, dest, &bo, &x, &ei);
    double secs = mono_s() - p.t0;
    int crc = sr_engine_close(e);
    if (rc) {
        fprintf(stderr, "suiro %s: %s\n", cmd->name, ei.msg[0] ? ei.msg : sr_strerror(rc));
        return 1;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dest, x.name);
    print_json("backup", path, &x, secs);
    if (keep) {
        char kp[PATH_MAX];
        snprintf(kp, sizeof kp, "%s/platform-key.pem", dir);
        unsigned removed;
        if ((rc = sr_backup_prune(dest, o.platform_key ? o.platform_key : kp, (unsigned)keep, &removed, &ei))) {
            fprintf(stderr, "suiro %s: --keep: %s\n", cmd->name, ei.msg);
            return 1;
        }
        if (removed) fprintf(stderr, "suiro %s: %u older backup(s) removed (--keep %llu)\n", cmd->name, removed, keep);
    }
    return crc ? 1 : 0;
}

int sr_cmd_restore(const sr_command *cmd, int argc, char **argv)
{
    bopts o = {0};
    sr_args a;
    int rc = sr_opts_parse(cmd, argc, argv, &o, &a);
    if (rc) return rc == SR_OPTS_HELP ? 0 : rc;
    if (!o.platform_key)
        return sr_opts_error(cmd, "needs --platform-key FILE (the platform's platform-key.pem or platform-cert.pem: "
                                  "the backup's signature is checked with it)");
    sr_restore_opts ro = {.platform_key = o.platform_key, .source = "cli"};
    if (o.to) {
        unsigned long long seq;
        if (!sr_cli_parse_u64(o.to, &seq) && seq > 0) ro.to_seq = seq;
        else if (sr_time_parse(o.to, strlen(o.to), (int64_t)time(NULL) * 1000, &ro.to_ms) == SR_OK) ro.has_to_ms = 1;
        else return sr_opts_error(cmd, "--to: a seq (1, 2, ...) or a time (RFC 3339, now, -1h)");
    }
    sr_key key;
    if (o.keyfile) {
        if ((rc = load_key(cmd->name, o.keyfile, &key))) return rc;
        ro.key = &key;
    }
    prog p = {.t0 = mono_s(), .tty = isatty(2)};
    ro.progress = on_progress;
    ro.progress_ctx = &p;
    sr_backup_info x;
    sr_errinfo ei;
    rc = sr_backup_restore(a.pos[0], a.pos[1], &ro, &x, &ei);
    if (rc) {
        fprintf(stderr, "suiro %s: %s%s\n", cmd->name, ei.msg[0] ? ei.msg : sr_strerror(rc),
                rc == SR_EKEY && !o.keyfile ? " (--key-file FILE)" : "");
        return 1;
    }
    print_json("restore", a.pos[1], &x, mono_s() - p.t0);
    return 0;
}
