/*
 * api/cli/cmd_engine.c -- engine-level commands:
 *   suiro init [--demo] [--admin ID] [--second-admin ID] [--signature ALG] DIR
 *                                      create a data directory (demo operator from the embedded sheet) and
 *                                      its first platform admin (ID, default "admin") with a temporary
 *                                      password printed once (docs/admin.md, "The first platform admin")
 *   suiro sheet import FILE DIR [--config F]
 *                                      apply a set-up sheet (all-or-nothing, idempotent); a [retention]
 *                                      audit period below F's audit_floor_days (default 365) is refused
 *                                      (offline: no two-person rule; through a server: its pending change)
 *   suiro sheet export DIR --operator OP
 *   suiro rebuild DIR [--discard-lost] drop the index and replay the whole log (progress on a terminal);
 *                                      refuses a log that lost events the index had applied
 *   suiro replay DIR [filters]         decoded events as JSON lines (R-RE-1)
 *   suiro verify DIR                   log verify + index-vs-log consistency (R-RE-3) + every
 *                                      referenced blob read and authenticated (exit 1 if any is damaged)
 *   suiro key list|rotate|rotate-master|export|import DIR
 *                                      the keyring (docs/keys.md "Running it"): offline, on a
 *                                      directory no server holds; each change a KeyEvent
 * Every command takes --key-file F when the log is encrypted.
 */
#include "api/cli/cli.h"
#include "api/httpu.h"
#include "storage/crypto.h"
#include "codecs/ids.h"
#include "api/config.h"
#include "api/pki.h"
#include "api/state.h"
#include "codecs/jsonlex.h"
#include "codecs/rfc3339.h"
#include "codecs/sheet.h"
#include "engine/records.h"
#include "engine/sheet.h"
#include "engine/suiro.h"
#include "storage/blobs.h"
#include "storage/keyring.h"
#include "storage/log.h"

#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern const unsigned char sr_demo_sheet[];
extern const size_t sr_demo_sheet_len;

typedef struct common {
    const char *dir, *keyfile;
    sr_key key;
    int has_key;
} common;

/* Every option of these commands (each table takes the ones it needs). */
typedef struct eopts {
    const char *keyfile, *op, *from, *to, *gateway, *point, *kind, *app, *pem, *admin, *admin2, *url, *token,
        *signature;
    const char *cls, *newkey, *fromkey, *config, *at;
    int demo, discard_lost, json, keep_legacy, no_snapshot;
} eopts;

#define KEY_FILE SR_OPT_STR("key-file", 0, "FILE", eopts, keyfile, "the log's key, if it is encrypted: FILE, env:VAR or cmd:COMMAND")

const sr_opt sr_opts_init[] = {
    SR_OPT_FLAG("demo", 0, eopts, demo, "import the demo operator (docs/examples/demo-sheet.csv)"),
    SR_OPT_STR("admin", 0, "ID", eopts, admin, "the first platform admin's user id (default admin)"),
    SR_OPT_STR("second-admin", 0, "ID", eopts, admin2,
               "also a second platform admin (the two-person rule needs two to approve a privilege change)"),
    SR_OPT_STR("signature", 0, "ALG", eopts, signature,
               "the platform key's signature algorithm: ES256 (default), ES384, PS256 or EdDSA"),
    KEY_FILE,
    SR_OPT_END,
};
/* against a running server: its admin API (docs/admin.md) */
#define SERVER_OPTS                                                                                             \
    SR_OPT_STR("url", 0, "URL", eopts, url, "a running server's HTTP base URL [SUIRO_URL]"),                     \
        SR_OPT_STR("token", 0, "TOKEN", eopts, token, "an admin session token of that server [SUIRO_TOKEN]")

const sr_opt sr_opts_sheet_import[] = {
    KEY_FILE,
    SR_OPT_STR("config", 0, "FILE", eopts, config,
               "the server's configuration file: its [retention] audit_floor_days (default 365) is the floor a sheet's "
               "audit period may not go below offline"),
    SERVER_OPTS,
    SR_OPT_END,
};
const sr_opt sr_opts_sheet_export[] = {
    SR_OPT_STR("operator", 0, "OP", eopts, op, "the operator (required)"),
    KEY_FILE,
    SR_OPT_END,
};
const sr_opt sr_opts_rebuild[] = {
    SR_OPT_FLAG("discard-lost", 0, eopts, discard_lost,
                "rebuild even if the log lost events the index had applied (they are lost for good)"),
    KEY_FILE,
    SR_OPT_END,
};
const sr_opt sr_opts_replay[] = {
    SR_OPT_STR("from", 0, "SEQ|TIME", eopts, from, "the first event: a sequence number or a time"),
    SR_OPT_STR("to", 0, "SEQ|TIME", eopts, to, "the last sequence number, or the time to stop before"),
    SR_OPT_STR("operator", 0, "OP", eopts, op, "events of this operator only"),
    SR_OPT_STR("gateway", 0, "GW", eopts, gateway, "events sent by this gateway only"),
    SR_OPT_STR("point", 0, "DATAID", eopts, point, "measurements of this data point only (needs --operator)"),
    SR_OPT_STR("kind", 0, "KIND", eopts, kind, "events of this body only (measurements, master_put, ...)"),
    KEY_FILE,
    SR_OPT_END,
};
const sr_opt sr_opts_state[] = {
    SR_OPT_STR("at", 0, "TIME", eopts, at, "the time (an ingest time: what was durable then), or UTC ms; required"),
    SR_OPT_STR("operator", 0, "OP", eopts, op, "this operator only (default: every operator and the platform)"),
    SR_OPT_FLAG("json", 0, eopts, json, "the whole answer as one JSON object (GET /admin/v1/state's)"),
    SR_OPT_FLAG("no-snapshot", 0, eopts, no_snapshot,
                "replay the log from its start with the ordinary appliers (the reference answer), no state snapshot"),
    KEY_FILE,
    SR_OPT_END,
};
const sr_opt sr_opts_verify[] = {
    SR_OPT_FLAG("json", 0, eopts, json, "the verdict as one JSON object (the members of `log verify --json` and more)"),
    KEY_FILE,
    SR_OPT_END,
};
const sr_opt sr_opts_cert_import[] = {
    SR_OPT_STR("operator", 0, "OP", eopts, op, "the operator"),
    SR_OPT_STR("app", 0, "ID", eopts, app, "the app whose certificate it is"),
    SR_OPT_STR("gateway", 0, "ID", eopts, gateway, "the gateway whose certificate it is"),
    SR_OPT_STR("pem", 0, "FILE", eopts, pem, "the certificate (one PEM X.509, at most 64 KiB)"),
    KEY_FILE,
    SERVER_OPTS,
    SR_OPT_END,
};

const sr_opt sr_opts_key_list[] = {KEY_FILE, SR_OPT_END};
const sr_opt sr_opts_key_rotate[] = {
    SR_OPT_STR("operator", 0, "OP", eopts, op, "the key's operator (default: the platform's own, \"\")"),
    SR_OPT_STR("class", 0, "C", eopts, cls, "data (default), audit or config"),
    KEY_FILE,
    SR_OPT_END,
};
const sr_opt sr_opts_key_rotate_master[] = {
    SR_OPT_STR("new-key-file", 0, "FILE", eopts, newkey, "the new master key: FILE, env:VAR or cmd:COMMAND (required)"),
    SR_OPT_FLAG("keep-legacy", 0, eopts, keep_legacy,
                "keep the old master readable (wrapped by the new one): log segments of versions 1 and 2 need it"),
    KEY_FILE,
    SR_OPT_END,
};
const sr_opt sr_opts_key_export[] = {KEY_FILE, SR_OPT_END};
const sr_opt sr_opts_key_import[] = {
    SR_OPT_STR("from-key-file", 0, "FILE", eopts, fromkey, "the master the export is wrapped by, if another"),
    KEY_FILE,
    SR_OPT_END,
};

enum { GO_ON = -100 };

/* Parse, then (unless --help or a usage error) check the data directory
 * (pos[dir_at]; dir_at < 0: init, which creates it) and load the key. GO_ON
 * or the exit code; nothing is created or read before the arguments are
 * known to be right. */
static int begin(const sr_command *cmd, int argc, char **argv, eopts *o, common *c, sr_args *a, int dir_at,
                 int dir_code, int (*check)(const sr_command *, const eopts *))
{
    int rc = sr_opts_parse(cmd, argc, argv, o, a);
    if (rc) return rc == SR_OPTS_HELP ? 0 : rc;
    if (check && (rc = check(cmd, o))) return rc;
    c->dir = a->pos[dir_at < 0 ? 0 : dir_at];
    if (dir_at >= 0 && sr_cli_data_dir(cmd->name, c->dir)) return dir_code;
    if (o->keyfile) {
        c->keyfile = o->keyfile;
        char err[256];
        if (sr_key_load(c->keyfile, &c->key, err, sizeof err)) {
            fprintf(stderr, "suiro %s: %s\n", cmd->name, err);
            return 2;
        }
        c->has_key = 1;
    }
    return GO_ON;
}

/* errors start "suiro CMD: DIR: ", as every command's do */
static int open_engine(const sr_command *cmd, const common *c, int readonly, sr_engine **e)
{
    sr_engine_opts o = {.key = c->has_key ? &c->key : NULL, .readonly = readonly};
    sr_errinfo ei;
    int rc = sr_engine_open(c->dir, &o, e, &ei);
    if (rc)
        fprintf(stderr, "suiro %s: %s: %s%s\n", cmd->name, c->dir, ei.msg[0] ? ei.msg : sr_strerror(rc),
                sr_cli_key_hint(rc, c->has_key));
    return rc;
}

/* A running server holds DIR (its log is open for writing): a change goes
 * through the server's admin API. With a URL and a token (--url/--token,
 * else SUIRO_URL/SUIRO_TOKEN) it runs the `suiro admin` command argv (which
 * takes them from the environment) and returns its exit code; without them
 * it names that command and returns 1. */
int sr_cli_through_server(const char *name, const char *dir, const char *url, const char *token, char **argv,
                          int argc)
{
    if (!url) url = getenv("SUIRO_URL");
    if (!token) token = getenv("SUIRO_TOKEN");
    if (url && url[0] && token && token[0]) {
        if (setenv("SUIRO_URL", url, 1) || setenv("SUIRO_TOKEN", token, 1)) return 1;
        return sr_cli_run(argc, argv);
    }
    fprintf(stderr, "suiro %s: %s: the server is running (its log is open for writing in another process); make "
                    "the change through it:\n ",
            name, dir);
    fprintf(stderr, " suiro");
    for (int i = 0; i < argc; i++) fprintf(stderr, " %s", argv[i]);
    fprintf(stderr, "\n(with SUIRO_URL and SUIRO_TOKEN set), or run this command again with --url URL --token TOKEN\n");
    return 1;
}

static int through_server(const sr_command *cmd, const common *c, const eopts *o, char **argv, int argc)
{
    return sr_cli_through_server(cmd->name, c->dir, o->url, o->token, argv, argc);
}

/* As open_engine, but a log held by a running server is *locked = 1 and
 * printed by through_server instead. */
static int open_engine_or_server(const sr_command *cmd, const common *c, sr_engine **e, int *locked)
{
    sr_engine_opts o = {.key = c->has_key ? &c->key : NULL};
    sr_errinfo ei;
    *locked = 0;
    int rc = sr_engine_open(c->dir, &o, e, &ei);
    if (rc == SR_ELOCKED) *locked = 1;
    else if (rc)
        fprintf(stderr, "suiro %s: %s: %s%s\n", cmd->name, c->dir, ei.msg[0] ? ei.msg : sr_strerror(rc),
                sr_cli_key_hint(rc, c->has_key));
    return rc;
}

static int print_sheet_errors(const sr_sheet *sh, const char *file)
{
    for (size_t i = 0; i < sh->n_errors; i++)
        fprintf(stderr, "%s:%zu:%s%s %s\n", file, sh->errors[i].line, sh->errors[i].column[0] ? " " : "",
                sh->errors[i].column, sh->errors[i].msg);
    if (sh->errors_truncated) fprintf(stderr, "%s: more errors not shown\n", file);
    return (int)sh->n_errors;
}

/* floor: [retention] audit_floor_days (docs/setup-sheet.md [retention]):
 * offline there is no two-person rule, so a sheet shortening the audit
 * period below it is refused */
static int import_bytes(const sr_command *cmd, sr_engine *e, const void *data, size_t len, const char *name,
                        uint32_t floor_days)
{
    sr_sheet *sh = NULL;
    int rc = sr_sheet_parse(data, len, NULL, &sh);
    if (!sh) {
        fprintf(stderr, "suiro %s: %s: %s\n", cmd->name, name, sr_strerror(rc));
        return 1;
    }
    if (rc || sh->n_errors) {
        print_sheet_errors(sh, name);
        fprintf(stderr, "suiro %s: %s: %zu error(s); nothing imported\n", cmd->name, name, sh->n_errors);
        sr_sheet_free(sh);
        return 1;
    }
    sr_result res;
    sr_cmd_env env = {NULL, "sheet-import", SR_ACTOR_USER, NULL, NULL};
    sr_setup_hook floor = {.audit_floor_days = floor_days};
    rc = sr_engine_import_sheet_as(e, sh, &env, &floor, &res);
    if (rc) fprintf(stderr, "suiro %s: %s: %s\n", cmd->name, name, res.err.msg[0] ? res.err.msg : sr_strerror(rc));
    else if (res.count)
        printf("imported %s: %u change(s) stored (seq %" PRIu64 "..%" PRIu64 ")%s%s\n", name, res.count, res.seq,
               res.seq + res.count - 1, res.err.msg[0] ? "; " : "", res.err.msg);
    else
        printf("imported %s: nothing changed\n", name);
    sr_sheet_free(sh);
    return rc ? 1 : 0;
}

/* The first platform admins (issue #14): the first, and a second if asked
 * (the two-person rule, docs/admin.md: a privilege change such as creating
 * another admin needs a second admin's approval, so a platform needs two
 * from the start), each with a random temporary password (hex of
 * SR_INIT_PASSWORD_BYTES random bytes) into passwords[i], created in e by
 * "system" from "cli" -- only in a directory without users. The password
 * policy is the default of [users] (init reads no configuration file); the
 * password is longer than its default minimum. 0 or 1 (the error printed). */
#define SR_INIT_PASSWORD_BYTES 16
static int first_admins(sr_engine *e, const char *const *admins, size_t n, char (*passwords)[2 * SR_INIT_PASSWORD_BYTES + 1])
{
    for (size_t i = 0; i < n; i++) passwords[i][0] = 0;
    sr_rec h = SR_REC_INIT;
    int rc = sr_list_users(e, &h);
    size_t users = h.count;
    sr_rec_close(&h);
    if (rc) {
        fprintf(stderr, "suiro init: the users: %s\n", sr_strerror(rc));
        return 1;
    }
    if (users) return 0; /* an existing directory: it has its admins (no new one, no password) */
    sr_config cfg;
    sr_config_defaults(&cfg);
    sr_password_policy pol;
    sr_config_password_policy(&cfg, &pol);
    static const char *const roles[] = {"platform_admin"};
    sr_cmd_env env = {"", "system", SR_ACTOR_SYSTEM, NULL, "cli"};
    sr_buf evb;
    sr_buf_init(&evb);
    size_t lens[2] = {0, 0};
    char why[160] = "";
    for (size_t i = 0; i < n && !rc; i++) {
        uint8_t raw[SR_INIT_PASSWORD_BYTES];
        if (sr_random(raw, sizeof raw)) {
            fprintf(stderr, "suiro init: no randomness for the admin's password\n");
            sr_buf_release(&evb);
            return 1;
        }
        sr_hex(raw, sizeof raw, passwords[i]);
        OPENSSL_cleanse(raw, sizeof raw);
        sr_user u = {.id = admins[i], .name = admins[i], .scope = SR_US_PLATFORM, .scope_id = "", .roles = roles,
                     .n_roles = 1};
        size_t before = evb.len;
        rc = sr_cmd_user_create(&env, &u, passwords[i], 1, (int64_t)time(NULL) * 1000, &pol, &evb, why, sizeof why);
        lens[i] = evb.len - before;
    }
    sr_result res = {0};
    if (!rc) { /* one command: both admins or none */
        sr_slice sl[2] = {{evb.data, lens[0]}, {evb.data + lens[0], lens[1]}};
        rc = sr_engine_submit_wait(e, sl, n, &res);
        if (!rc) rc = res.rc;
    }
    sr_buf_release(&evb);
    if (rc) {
        fprintf(stderr, "suiro init: the first platform admin: %s\n",
                why[0] ? why : res.err.msg[0] ? res.err.msg : sr_strerror(rc));
        for (size_t i = 0; i < n; i++) passwords[i][0] = 0;
    }
    return rc ? 1 : 0;
}

int sr_cmd_init(const sr_command *cmd, int argc, char **argv)
{
    common c = {0};
    eopts o = {0};
    sr_args a;
    int rc = begin(cmd, argc, argv, &o, &c, &a, -1, 1, NULL);
    if (rc != GO_ON) return rc;
    int demo = o.demo;
    const char *admins[2] = {o.admin ? o.admin : "admin", o.admin2};
    size_t nadmins = o.admin2 ? 2 : 1;
    if (!sr_id_str_ok(admins[0])) return sr_opts_error(cmd, "--admin: not an ID ([A-Za-z0-9._-]{1,64})");
    if (o.admin2 && !sr_id_str_ok(o.admin2)) return sr_opts_error(cmd, "--second-admin: not an ID ([A-Za-z0-9._-]{1,64})");
    if (o.admin2 && !strcmp(o.admin2, admins[0])) return sr_opts_error(cmd, "--second-admin: the same ID as --admin");
    sr_alg sig_alg = SR_ALG_ES256;
    char why[256];
    if (o.signature && sr_alg_by_name(o.signature, SR_ALG_KIND_SIG, &sig_alg, why, sizeof why))
        return sr_opts_error(cmd, "--signature: %s", why);
    sr_engine *e;
    if (open_engine(cmd, &c, 0, &e)) return 1;
    char passwords[2][2 * SR_INIT_PASSWORD_BYTES + 1];
    int code = first_admins(e, admins, nadmins, passwords);
    if (!code && demo) code = import_bytes(cmd, e, sr_demo_sheet, sr_demo_sheet_len, "demo-sheet.csv", 0);
    if (sr_engine_close(e)) code = 1;
    char perr[1200];
    if (!code && sr_pki_ensure_platform(c.dir, sig_alg, perr, sizeof perr)) {
        fprintf(stderr, "suiro init: %s\n", perr);
        code = 1;
    }
    if (!code) {
        printf("data directory %s ready%s\n", c.dir, demo ? " (demo operator 'demo')" : "");
        if (passwords[0][0]) {
            for (size_t i = 0; i < nadmins; i++)
                printf("%splatform admin: %s\ntemporary password: %s\n", i ? "second " : "", admins[i], passwords[i]);
            printf("%s\n", nadmins > 1 ? "these passwords are shown only once; each must be changed at first login"
                                       : "this password is shown only once; it must be changed at first login");
        } else {
            printf("users exist already: no platform admin created, no password printed\n");
        }
    }
    OPENSSL_cleanse(passwords, sizeof passwords);
    return code;
}

int sr_cmd_sheet_import(const sr_command *cmd, int argc, char **argv)
{
    common c = {0};
    eopts o = {0};
    sr_args a;
    int rc = begin(cmd, argc, argv, &o, &c, &a, 1, 1, NULL);
    if (rc != GO_ON) return rc;
    const char *file = a.pos[0];
    sr_config cfg;
    sr_config_defaults(&cfg);
    char err[768];
    if (o.config && sr_config_load(&cfg, o.config, err, sizeof err)) {
        fprintf(stderr, "suiro sheet import: %s\n", err);
        return 2;
    }
    {
        FILE *f = fopen(file, "rb");
        if (!f) {
            fprintf(stderr, "suiro sheet import: %s: %s\n", file, strerror(errno));
            return 1;
        }
        sr_buf b;
        sr_buf_init(&b);
        char tmp[65536];
        size_t n;
        while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
            if (sr_buf_append(&b, tmp, n)) break;
        fclose(f);
        sr_engine *e;
        int code = 1, locked;
        if (!open_engine_or_server(cmd, &c, &e, &locked)) {
            code = import_bytes(cmd, e, b.data ? (const void *)b.data : "", b.len, file,
                                cfg.retention_audit_floor_days);
            if (sr_engine_close(e)) code = 1;
        } else if (locked) {
            /* the sheet names its operator ("OP" when it does not parse: the
             * server's answer will list its errors) */
            sr_sheet *sh = NULL;
            (void)!sr_sheet_parse(b.data ? (const void *)b.data : "", b.len, NULL, &sh);
            char op[SR_SHEET_ID_MAX + 1];
            snprintf(op, sizeof op, "%s", sh && sh->n_operators ? sh->operators[0].id : "OP");
            sr_sheet_free(sh);
            char *av[] = {"admin", "sheet-import", op, (char *)file, NULL};
            code = through_server(cmd, &c, &o, av, 4);
        }
        sr_buf_release(&b);
        return code;
    }
}

static int need_operator(const sr_command *cmd, const eopts *o)
{
    return o->op ? 0 : sr_opts_error(cmd, "--operator OP is required");
}

int sr_cmd_sheet_export(const sr_command *cmd, int argc, char **argv)
{
    common c = {0};
    eopts o = {0};
    sr_args a;
    int brc = begin(cmd, argc, argv, &o, &c, &a, 0, 1, need_operator);
    if (brc != GO_ON) return brc;
    const char *op = o.op;
    {
        sr_engine *e;
        if (open_engine(cmd, &c, 1, &e)) return 1;
        sr_buf out;
        sr_buf_init(&out);
        int rc = sr_engine_export_sheet(e, op, &out);
        if (rc == SR_ENOTFOUND) fprintf(stderr, "suiro sheet export: no operator '%s'\n", op);
        else if (rc) fprintf(stderr, "suiro sheet export: %s\n", sr_strerror(rc));
        else fwrite(out.data, 1, out.len, stdout);
        sr_buf_release(&out);
        sr_engine_close(e);
        return rc ? 1 : 0;
    }
}

static void progress(void *ctx, uint64_t done, uint64_t total)
{
    (void)ctx;
    if (!total) return;
    int pct = (int)(done * 100 / total), bar = pct / 4;
    fprintf(stderr, "\rrebuild [%-25.*s] %3d%% %" PRIu64 "/%" PRIu64 " events", bar,
            "#########################", pct, done, total);
    if (done >= total) fputc('\n', stderr);
}

int sr_cmd_rebuild(const sr_command *cmd, int argc, char **argv)
{
    common c = {0};
    eopts eo = {0};
    sr_args a;
    int brc = begin(cmd, argc, argv, &eo, &c, &a, 0, 1, NULL);
    if (brc != GO_ON) return brc;
    int discard = eo.discard_lost;
    sr_engine_opts o = {.key = c.has_key ? &c.key : NULL, .discard_lost = discard};
    if (isatty(2)) o.progress = progress;
    sr_errinfo ei;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    sr_engine_open_stats st;
    memset(&st, 0, sizeof st);
    int rc = sr_engine_rebuild_stats(c.dir, &o, &st, &ei);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    for (uint32_t i = 0; !rc && i < st.n_erased; i++) /* never a failure: said (docs/keys.md) */
        printf("erased: %" PRIu64 " records (seq %" PRIu64 "..%" PRIu64 ") of data key %08x, operator \"%s\", class %s, "
               "epoch %u: its key was destroyed\n",
               st.erased[i].records, st.erased[i].first_seq, st.erased[i].last_seq, st.erased[i].key_id,
               st.erased[i].operator_id, st.erased[i].key_class, st.erased[i].epoch);
    if (!rc && st.log_first_seq > 1) /* segments dropped (docs/keys.md "Segments"): said, never a failure */
        printf("trimmed: the log starts at seq %" PRIu64 "; the LogTrim event %" PRIu64 " at %" PRId64
               " (UTC ms) dropped %" PRIu64 " records below seq %" PRIu64 "\n",
               st.log_first_seq, st.trim_seq, st.trim_ms, st.trimmed_records, st.trimmed_below);
    if (rc) {
        fprintf(stderr, "suiro rebuild: %s%s\n", ei.msg[0] ? ei.msg : sr_strerror(rc), sr_cli_key_hint(rc, c.has_key));
        return 1;
    }
    printf("rebuilt the index of %s in %.2f s\n", c.dir,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    return 0;
}

/* SEQ (digits) or a time (sr_time_parse: RFC 3339 with any offset, now, -1h ...):
 * 0 and *is_seq; -1 if neither */
static int parse_bound(const char *s, int64_t now, uint64_t *seq, int64_t *ms, int *is_seq)
{
    unsigned long long v;
    if (!sr_cli_parse_u64(s, &v)) {
        *seq = v;
        *is_seq = 1;
        return 0;
    }
    *is_seq = 0;
    return sr_time_parse(s, strlen(s), now, ms) ? -1 : 0;
}

/* dataIds of point numbers, per operator: from the index (every data point
 * it holds) when an operator is first met, and from the master_put events
 * the replay passes (a point the index no longer has). */
typedef struct opnames {
    struct opnames *next;
    char *op;
    char **ids; /* by point number */
    uint32_t n;
} opnames;

typedef struct names {
    sr_engine *e; /* NULL: the index could not be opened (names from the log only) */
    opnames *ops;
} names;

static void names_set(opnames *on, uint32_t point, const char *id)
{
    if (point >= (1u << 24)) return; /* numbers are assigned from 1 up: not one of ours */
    if (point >= on->n) {
        uint32_t n = point + 64;
        char **ids = realloc(on->ids, n * sizeof *ids);
        if (!ids) return;
        memset(ids + on->n, 0, (n - on->n) * sizeof *ids);
        on->ids = ids;
        on->n = n;
    }
    char *d = strdup(id);
    if (!d) return;
    free(on->ids[point]);
    on->ids[point] = d;
}

static opnames *names_of(names *nm, const char *op)
{
    for (opnames *on = nm->ops; on; on = on->next)
        if (!strcmp(on->op, op)) return on;
    opnames *on = calloc(1, sizeof *on);
    if (!on || !(on->op = strdup(op))) {
        free(on);
        return NULL;
    }
    on->next = nm->ops;
    nm->ops = on;
    sr_rec r = SR_REC_INIT;
    if (nm->e && sr_list_masters(nm->e, op, SR_MK_DATA_POINT, &r) == SR_OK) {
        sr_master m;
        for (int k; (k = sr_rec_next_master(&r, &m)) != 0;) {
            if (k == SR_ECORRUPT) continue; /* a record that does not decode is skipped */
            if (k < 0) break;
            if (*m.id) names_set(on, m.point, m.id);
        }
    }
    sr_rec_close(&r);
    return on;
}

static const char *data_id(void *ctx, const char *op, uint32_t point)
{
    opnames *on = names_of(ctx, op);
    return on && point < on->n ? on->ids[point] : NULL;
}

static void names_free(names *nm)
{
    while (nm->ops) {
        opnames *on = nm->ops;
        nm->ops = on->next;
        for (uint32_t i = 0; i < on->n; i++) free(on->ids[i]);
        free(on->ids);
        free(on->op);
        free(on);
    }
    if (nm->e) sr_engine_close(nm->e);
}

/* --from/--to into the bounds (now_ms for relative times): 0, or the usage error */
static int replay_bounds(const sr_command *cmd, const eopts *o, int64_t now_ms, uint64_t seq[2], int64_t ms[2])
{
    for (int k = 0; k < 2; k++) {
        const char *v = k ? o->to : o->from;
        if (!v) continue;
        uint64_t sq = 0;
        int64_t t = 0;
        int is_seq;
        if (parse_bound(v, now_ms, &sq, &t, &is_seq))
            return sr_opts_error(cmd,
                                 "--%s wants a sequence number or a time (2026-11-22T03:00:00Z, "
                                 "2026-11-22T12:00:00.5+09:00, now, -1h), not '%s'",
                                 k ? "to" : "from", v);
        if (is_seq) seq[k] = sq;
        else ms[k] = t;
    }
    return 0;
}

static int replay_check(const sr_command *cmd, const eopts *o)
{
    uint64_t seq[2];
    int64_t ms[2];
    int rc = replay_bounds(cmd, o, 0, seq, ms);
    if (!rc && o->point && !o->op) rc = sr_opts_error(cmd, "--point needs --operator");
    return rc;
}

int sr_cmd_replay(const sr_command *cmd, int argc, char **argv)
{
    common c = {0};
    eopts o = {0};
    sr_args a;
    int brc = begin(cmd, argc, argv, &o, &c, &a, 0, 1, replay_check);
    if (brc != GO_ON) return brc;
    const char *op = o.op, *gw = o.gateway, *point = o.point, *kind = o.kind;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t seqs[2] = {1, UINT64_MAX};
    int64_t times[2] = {INT64_MIN, INT64_MAX};
    if (replay_bounds(cmd, &o, (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000, seqs, times)) return 2;
    uint64_t from_seq = seqs[0], to_seq = seqs[1];
    int64_t from_ms = times[0], to_ms = times[1];
    names nm = {0};
    if (point) {
        if (open_engine(cmd, &c, 1, &nm.e)) return 1;
    } else {
        /* the index only names points: without it, names come from the log */
        sr_engine_opts eo = {.key = c.has_key ? &c.key : NULL, .readonly = 1};
        sr_errinfo ei;
        if (sr_engine_open(c.dir, &eo, &nm.e, &ei)) nm.e = NULL;
    }
    uint32_t pnum = 0;
    if (point && sr_engine_point(nm.e, op, point, &pnum, NULL)) {
        fprintf(stderr, "suiro replay: no data point '%s' for operator '%s'\n", point, op);
        names_free(&nm);
        return 1;
    }
    char logdir[PATH_MAX];
    snprintf(logdir, sizeof logdir, "%s/log", c.dir);
    sr_log_opts lo = {.readonly = 1, .key = c.has_key ? &c.key : NULL};
    sr_log *lg;
    sr_errinfo ei;
    sr_keyring *kr = sr_cli_keyring(logdir, lo.key, &lo); /* closed at exit */
    int orc = sr_log_open(logdir, &lo, &lg, &ei);
    if (orc) {
        fprintf(stderr, "suiro replay: %s%s\n", ei.msg, sr_cli_key_hint(orc, c.has_key));
        names_free(&nm);
        sr_keyring_close(kr);
        return 1;
    }
    sr_event_json_opts jo = {.number = sr_json_number, .data_id = data_id, .ctx = &nm, .times = 1, .audit = 1};
    sr_log_iter *it;
    int rc = sr_log_iter_open(lg, from_seq, &it);
    uint64_t seq;
    sr_slice rec;
    sr_buf line;
    sr_buf_init(&line);
    sr_rec held = SR_REC_INIT;
    uint64_t erased = 0, erased_first = 0, erased_last = 0;
    while (!rc && ((rc = sr_log_iter_next(it, &seq, &rec)) == SR_OK || rc == SR_EERASED) && seq <= to_seq) {
        if (rc == SR_EERASED) { /* its key was destroyed: counted, said at the end (docs/keys.md) */
            if (!erased++) erased_first = seq;
            erased_last = seq;
            rc = SR_OK;
            continue;
        }
        sr_event_view v, *ev = &v;
        if (sr_event_decode(rec.data, rec.len, &held, ev)) {
            fprintf(stderr, "suiro replay: record %" PRIu64 " does not decode as an event\n", seq);
            rc = SR_ECORRUPT;
            break;
        }
        int show = ev->ingest_ms >= from_ms && ev->ingest_ms < to_ms;
        if (show && op && strcmp(ev->op, op)) show = 0;
        if (show && gw && !(ev->actor_kind == SR_ACTOR_GATEWAY && !strcmp(ev->actor, gw))) show = 0;
        if (show && point && !sr_event_has_point(ev, pnum)) show = 0;
        if (show && kind && strcmp(ev->kind, kind)) show = 0;
        if (ev->has_master && ev->master.kind == SR_MK_DATA_POINT && *ev->master.id) {
            opnames *on = names_of(&nm, ev->op);
            if (on) names_set(on, ev->master.point, ev->master.id);
        }
        if (show) {
            line.len = 0;
            if (sr_event_view_json(ev, &jo, &line) == SR_OK) {
                fwrite(line.data, 1, line.len, stdout);
                fputc('\n', stdout);
            }
        }
        sr_rec_close(&held); /* one event at a time */
    }
    sr_rec_close(&held);
    if (rc == SR_DONE || rc == SR_OK) rc = SR_OK;
    else fprintf(stderr, "suiro replay: %s%s\n", sr_log_iter_errinfo(it)->msg, sr_cli_key_hint(rc, c.has_key));
    if (erased)
        fprintf(stderr,
                "suiro replay: %" PRIu64 " records (seq %" PRIu64 "..%" PRIu64 ") were erased: their key was destroyed "
                "(`suiro key list` names it)\n",
                erased, erased_first, erased_last);
    sr_buf_release(&line);
    sr_log_iter_close(it);
    sr_log_close(lg);
    sr_keyring_close(kr);
    names_free(&nm);
    return rc ? 1 : 0;
}

/* Remove a directory holding an LMDB environment we created. */
static void rm_index(const char *d)
{
    char p[PATH_MAX + 16];
    snprintf(p, sizeof p, "%s/data.mdb", d);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock.mdb", d);
    unlink(p);
    rmdir(d);
}

/* 3. blobs: every file the index references, read in full and checked */
typedef struct blobcheck {
    sr_blobs *bs;
    int json;
    uint64_t files, damaged, erased;
    sr_buf js; /* JSON array items of the damaged ones */
} blobcheck;

/* one JSON string into the damaged list (codecs/jsonlex.c's escaper); out of
 * memory leaves it short: the verdict (exit code) still stands */
static void js_str(sr_buf *b, const char *s)
{
    (void)sr_json_put_string(b, s, strlen(s));
}

static int check_blob(void *ctx, const char *op, const sr_file_meta *f)
{
    blobcheck *bc = ctx;
    bc->files++;
    sr_blob_errinfo bei;
    memset(&bei, 0, sizeof bei);
    char hex[2 * SR_HASH_LEN + 1] = "";
    uint64_t size = 0;
    int rc;
    if (f->sha256.len != SR_HASH_LEN) {
        rc = SR_ECORRUPT;
        snprintf(bei.msg, sizeof bei.msg, "the file record has no valid content hash");
    } else {
        sr_hex(f->sha256.data, SR_HASH_LEN, hex);
        rc = sr_blob_verify_keyed(bc->bs, f->sha256.data, f->key_id, &size, &bei);
        if (rc == SR_EERASED) { /* its data key was destroyed (docs/keys.md): gone by design, not damage */
            bc->erased++;
            return SR_OK;
        }
        if (!rc && size != f->size) {
            rc = SR_ECORRUPT;
            snprintf(bei.msg, sizeof bei.msg, "blob holds %" PRIu64 " bytes, the file record says %" PRIu64, size,
                     f->size);
        }
        if (rc == SR_ENOTFOUND) snprintf(bei.msg, sizeof bei.msg, "blob file missing");
    }
    if (rc) {
        bc->damaged++;
        const char *why = bei.msg[0] ? bei.msg : sr_strerror(rc);
        if (bc->json) {
            if (bc->js.len) (void)sr_buf_append(&bc->js, ",", 1);
            (void)sr_buf_append(&bc->js, "{\"operator\":", 12);
            js_str(&bc->js, op);
            (void)sr_buf_append(&bc->js, ",\"path\":", 8);
            js_str(&bc->js, f->path);
            (void)sr_buf_append(&bc->js, ",\"blob\":", 8);
            js_str(&bc->js, hex);
            (void)sr_buf_append(&bc->js, ",\"error\":", 9);
            js_str(&bc->js, why);
            (void)sr_buf_append(&bc->js, "}", 1);
        } else
            fprintf(stderr, "blob-damaged: %s (operator %s, file %s): %s: %s\n", hex[0] ? hex : "-", op, f->path,
                    sr_err_name(rc), why);
    }
    return SR_OK;
}

/* verify's findings after the log's: the JSON members and the exit code */
static void verify_json_end(const char *a, const char *b, const blobcheck *bc)
{
    printf(",\"index\":\"%s\",\"rebuilt\":\"%s\",\"files\":%" PRIu64 ",\"damagedBlobs\":[%.*s]}\n", a, b, bc->files,
           (int)bc->js.len, bc->js.len ? (char *)bc->js.data : "");
}

int sr_cmd_verify(const sr_command *cmd, int argc, char **argv)
{
    common c = {0};
    eopts o = {0};
    sr_args args;
    int rc = sr_opts_parse(cmd, argc, argv, &o, &args);
    if (rc) return rc == SR_OPTS_HELP ? 0 : rc;
    int json = o.json;
    c.dir = args.pos[0];
    /* 1. the log: every block, checksum and the chain (as `log verify`) */
    sr_log_opts lo = {0};
    sr_log_report rep;
    sr_errinfo ei;
    memset(&rep, 0, sizeof rep);
    memset(&ei, 0, sizeof ei);
    rc = SR_OK;
    if (sr_cli_data_dir(NULL, c.dir)) {
        rc = SR_ENOTFOUND;
        snprintf(ei.msg, sizeof ei.msg, "%s is not a suiro data directory (no log/ in it); `suiro init %s` creates one",
                 c.dir, c.dir);
    } else if (o.keyfile) {
        char err[256];
        if (sr_key_load(o.keyfile, &c.key, err, sizeof err)) {
            fprintf(stderr, "suiro verify: %s\n", err);
            return 2;
        }
        c.has_key = 1;
        c.keyfile = o.keyfile;
    }
    lo.key = c.has_key ? &c.key : NULL;
    char logdir[PATH_MAX];
    snprintf(logdir, sizeof logdir, "%s/log", c.dir);
    /* what the index applied was durable: a bad tail below it is corruption */
    sr_engine_opts wo = {0};
    if (!rc && (rc = sr_engine_index_watermark(c.dir, &wo, &lo.durable_floor)))
        snprintf(ei.msg, sizeof ei.msg, "%s: the index cannot be read: %s", c.dir, sr_strerror(rc));
    sr_keyring *kr = rc ? NULL : sr_cli_keyring(logdir, lo.key, &lo);
    if (!rc) rc = sr_log_verify(logdir, &lo, &rep, &ei);
    if (!rc) rc = sr_engine_log_trim_check(logdir, &lo, &rep, &ei); /* a log whose start was dropped */
    sr_keyring_close(kr);
    lo.keys = NULL;
    const char *verdict;
    int code = sr_cli_log_verdict(rc, &rep, &verdict);
    if (code == 1 || code == 4) {
        if (json) {
            printf("{");
            sr_cli_log_json(stdout, verdict, rc, &rep, &ei);
            printf("}\n");
        }
        fprintf(stderr, "%s: log: %s%s\n", verdict, ei.msg[0] ? ei.msg : sr_strerror(rc),
                sr_cli_key_hint(rc, c.has_key));
        return code;
    }
    int log_rc = rc;
    sr_errinfo log_ei = ei;
    /* 2. the index: its content equals a rebuild from the log up to its watermark */
    sr_engine *e;
    if (open_engine(cmd, &c, 1, &e)) return 4;
    sr_engine_stats st;
    sr_engine_get_stats(e, &st);
    uint32_t head_max = sr_engine_head_max(e);
    uint8_t live[32], fresh[32];
    rc = sr_engine_content_hash(e, live);
    /* 3. every blob the index references: decrypt/authenticate each chunk,
     * size and content hash (read-only: a running server may hold the store) */
    blobcheck bc = {.json = json};
    sr_buf_init(&bc.js);
    if (!rc) {
        char bdir[PATH_MAX];
        snprintf(bdir, sizeof bdir, "%s/blobs", c.dir);
        sr_blobs_opts bo = {.key = c.has_key ? &c.key : NULL, .keys = sr_engine_data_keys(e), .readonly = 1};
        sr_blob_errinfo bei;
        if (sr_blobs_open(bdir, &bo, &bc.bs, &bei) == SR_OK) {
            rc = sr_each_file(e, check_blob, &bc);
            sr_blobs_close(bc.bs);
        }
    }
    sr_engine_close(e);
    uint64_t w = 0;
    char tmpl[PATH_MAX];
    snprintf(tmpl, sizeof tmpl, "%s/verify-index-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!rc && !mkdtemp(tmpl)) rc = SR_EIO;
    memset(&ei, 0, sizeof ei);
    if (!rc) {
        sr_engine_opts eo = {.key = c.has_key ? &c.key : NULL, .index_dir = tmpl, .log_readonly = 1,
                             .head_max = head_max};
        sr_engine *e2;
        w = st.watermark;
        eo.replay_to = w;
        rc = sr_engine_open(c.dir, &eo, &e2, &ei);
        if (!rc) {
            rc = sr_engine_content_hash(e2, fresh);
            sr_engine_close(e2);
        }
        rm_index(tmpl);
    }
    if (rc) {
        if (json) {
            printf("{");
            sr_cli_log_json(stdout, "unreadable", rc, &rep, &ei);
            printf("}\n");
        }
        fprintf(stderr, "unreadable: index: cannot check: %s%s\n", ei.msg[0] ? ei.msg : sr_strerror(rc),
                sr_cli_key_hint(rc, c.has_key));
        sr_buf_release(&bc.js);
        return 4;
    }
    char a[65], b[65], t[65];
    sr_hex(live, 32, a);
    sr_hex(fresh, 32, b);
    sr_hex(rep.tip, 32, t);
    int same = !memcmp(live, fresh, 32);
    if (!same) verdict = "index-differs", code = 1;
    else if (bc.damaged) verdict = "blobs-damaged", code = 1;
    if (json) {
        printf("{");
        sr_cli_log_json(stdout, verdict, log_rc, &rep, &log_ei);
        verify_json_end(a, b, &bc);
    } else {
        if (!same)
            fprintf(stderr, "index-differs: live index %s, rebuilt from the log %s; run `suiro rebuild %s`\n", a, b,
                    c.dir);
        else if (code == 3)
            fprintf(stderr, "torn-tail: log: %s; index equals a rebuild (%s)\n", log_ei.msg, a);
        else
            printf("%s: log %" PRIu64 " records, chain tip %s; index equals a rebuild (%s)\n", verdict, rep.records,
                   t, a);
        char er[80] = "";
        if (bc.erased) snprintf(er, sizeof er, " (%" PRIu64 " erased: their data key destroyed)", bc.erased);
        fprintf(bc.damaged ? stderr : stdout, "blobs: %" PRIu64 " file(s) checked%s, %" PRIu64 " damaged%s\n",
                bc.files, er, bc.damaged,
                bc.damaged ? " (named above; restore those blob files from a backup: the log holds only their hash)"
                           : "");
    }
    sr_buf_release(&bc.js);
    return code;
}

/* suiro cert import DIR --operator OP (--app ID | --gateway ID) --pem FILE:
 * register the data-protection certificate of an app or a gateway (AP-IF row
 * 9, GW_CERT_REQ). The PEM must hold one X.509 certificate. */
static int cert_check(const sr_command *cmd, const eopts *o)
{
    if (!o->op || !o->pem || !o->app == !o->gateway)
        return sr_opts_error(cmd, "needs --operator OP, one of --app ID and --gateway ID, and --pem FILE");
    return 0;
}

int sr_cmd_cert_import(const sr_command *cmd, int argc, char **argv)
{
    common c = {0};
    eopts o = {0};
    sr_args a;
    int brc = begin(cmd, argc, argv, &o, &c, &a, 0, 1, cert_check);
    if (brc != GO_ON) return brc;
    const char *op = o.op, *id = o.app ? o.app : o.gateway, *pemfile = o.pem;
    int kind = o.app ? SR_RG_APP : SR_RG_GATEWAY;
    FILE *f = fopen(pemfile, "rb");
    if (!f) {
        fprintf(stderr, "suiro cert: %s: %s\n", pemfile, strerror(errno));
        return 1;
    }
    char *pem = calloc(1, 65536);
    size_t len = pem ? fread(pem, 1, 65535, f) : 0;
    int more = pem && fgetc(f) != EOF;
    fclose(f);
    if (!pem || more || !sr_cert_pem_ok(pem, len)) {
        fprintf(stderr, "suiro cert: %s: not a PEM X.509 certificate (at most 64 KiB)\n", pemfile);
        free(pem);
        return 1;
    }
    sr_engine *e;
    int locked;
    if (open_engine_or_server(cmd, &c, &e, &locked)) {
        free(pem);
        char *av[] = {"admin", o.app ? "app-cert" : "gateway-cert", (char *)op, (char *)id, (char *)pemfile, NULL};
        return locked ? through_server(cmd, &c, &o, av, 5) : 1;
    }
    /* what the admin API's PUT .../certificate does (engine/sheet.h) */
    sr_cmd_env env = {op, "cli", SR_ACTOR_USER, NULL, "cli"};
    sr_reg_change ch = {.cert_pem = pem, .disabled = -1};
    sr_result res;
    int code = 1;
    if (sr_engine_registry_change(e, &env, (sr_reg_kind)kind, id, &ch, &res)) {
        if (res.rc == SR_ENOTFOUND)
            fprintf(stderr, "suiro cert: %s %s of operator %s: not registered (import a set-up sheet first)\n",
                    kind == SR_RG_APP ? "app" : "gateway", id, op);
        else fprintf(stderr, "suiro cert: %s\n", res.err.msg[0] ? res.err.msg : sr_strerror(res.rc));
    } else {
        printf("certificate of %s %s registered (seq %" PRIu64 ")\n",
               kind == SR_RG_APP ? "app" : "gateway", id, res.seq);
        code = 0;
    }
    free(pem);
    if (sr_engine_close(e)) code = 1;
    return code;
}

/* ---- suiro key (docs/keys.md "Running it") ------------------------------- */

/* The whole file at path into b: 0, or -1 (errno set). */
static int read_whole(const char *path, sr_buf *b)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    char tmp[65536];
    size_t n;
    int bad = 0;
    while (!bad && (n = fread(tmp, 1, sizeof tmp, f)) > 0) bad = sr_buf_append(b, tmp, n) != SR_OK;
    bad |= ferror(f);
    fclose(f);
    if (bad && !errno) errno = EIO;
    return bad ? -1 : 0;
}

/* Write a new file (refused if it exists), mode 0600, fsynced: 0 or -1. */
static int write_new(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) return -1;
    const uint8_t *q = p;
    while (n) {
        ssize_t w = write(fd, q, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            close(fd);
            unlink(path);
            return -1;
        }
        q += w, n -= (size_t)w;
    }
    int rc = fsync(fd);
    if (close(fd) || rc) {
        unlink(path);
        return -1;
    }
    return 0;
}

/* The engine of c->dir with its keyring, offline; NULL after saying why. */
static sr_engine *key_engine(const sr_command *cmd, common *c)
{
    if (!c->has_key) {
        fprintf(stderr, "suiro %s: --key-file is required: the keyring is wrapped by the master key\n", cmd->name);
        return NULL;
    }
    sr_engine_opts o = {.key = &c->key, .key_source = c->keyfile};
    sr_engine *e = NULL;
    sr_errinfo ei;
    memset(&ei, 0, sizeof ei);
    int rc = sr_engine_open(c->dir, &o, &e, &ei);
    if (rc == SR_ELOCKED) {
        fprintf(stderr, "suiro %s: %s is held by a running server: use its admin API (/admin/v1/keys, docs/keys.md)\n",
                cmd->name, c->dir);
        return NULL;
    }
    if (rc) {
        fprintf(stderr, "suiro %s: %s%s\n", cmd->name, ei.msg[0] ? ei.msg : sr_strerror(rc), sr_cli_key_hint(rc, 1));
        return NULL;
    }
    return e;
}

static sr_cmd_env key_env(void)
{
    const char *who = getenv("USER");
    return (sr_cmd_env){"", who && *who ? who : "cli", SR_ACTOR_USER, NULL, "cli"};
}

int sr_cmd_key_list(const sr_command *cmd, int argc, char **argv)
{
    common c = {0};
    eopts eo = {0};
    sr_args a;
    int brc = begin(cmd, argc, argv, &eo, &c, &a, 0, 1, NULL);
    if (brc != GO_ON) return brc;
    sr_engine *e = key_engine(cmd, &c);
    if (!e) return 1;
    sr_keyinfo *v = NULL;
    size_t n = 0;
    int rc = sr_engine_key_list(e, &v, &n);
    if (rc == SR_OK) {
        sr_buf b;
        sr_buf_init(&b);
        for (size_t i = 0; i < n; i++) {
            b.len = 0;
            if (sr_json_put_string(&b, v[i].operator_id, strlen(v[i].operator_id))) continue;
            printf("{\"keyId\":\"%08x\",\"operator\":%.*s,\"class\":\"%s\",\"epoch\":%u,\"alg\":%u,\"state\":\"%s\","
                   "\"createdMs\":%" PRId64 ",\"retiredMs\":%" PRId64 ",\"destroyedMs\":%" PRId64 "}\n",
                   v[i].id, (int)b.len, (const char *)b.data, sr_key_class_name(v[i].cls), v[i].epoch, v[i].alg,
                   sr_key_state_name(v[i].state), v[i].created_ms, v[i].retired_ms, v[i].destroyed_ms);
        }
        sr_buf_release(&b);
        fprintf(stderr, "%zu keys, wrapped by master key 0x%08x\n", n, sr_engine_master_key_id(e));
    } else
        fprintf(stderr, "suiro %s: %s\n", cmd->name, sr_strerror(rc));
    sr_free(v);
    sr_engine_close(e);
    return rc ? 1 : 0;
}

int sr_cmd_key_rotate(const sr_command *cmd, int argc, char **argv)
{
    common c = {0};
    eopts eo = {0};
    sr_args a;
    int brc = begin(cmd, argc, argv, &eo, &c, &a, 0, 1, NULL);
    if (brc != GO_ON) return brc;
    const char *cls = eo.cls ? eo.cls : "data";
    if (sr_key_class_parse(cls) < SR_KC_DATA) return sr_opts_error(cmd, "--class: data, audit or config");
    sr_engine *e = key_engine(cmd, &c);
    if (!e) return 1;
    sr_cmd_env env = key_env();
    sr_key_rec k = {.action = "rotate", .key_operator = eo.op ? eo.op : "", .key_class = cls};
    sr_buf b;
    sr_buf_init(&b);
    sr_result res;
    memset(&res, 0, sizeof res);
    int rc = sr_cmd_key_ev(&env, &k, &b);
    if (!rc) rc = sr_engine_submit_wait(e, &(sr_slice){b.data, b.len}, 1, &res);
    sr_buf_release(&b);
    if (rc) fprintf(stderr, "suiro %s: %s\n", cmd->name, res.err.msg[0] ? res.err.msg : sr_strerror(rc));
    else {
        uint32_t id = 0;
        sr_keyinfo *v = NULL;
        size_t n = 0;
        if (sr_engine_key_list(e, &v, &n) == SR_OK)
            for (size_t i = 0; i < n; i++)
                if (v[i].state == SR_KS_ACTIVE && v[i].cls == sr_key_class_parse(cls) && !strcmp(v[i].operator_id, k.key_operator))
                    id = v[i].id, printf("{\"rotated\":\"%08x\",\"epoch\":%u,\"seq\":%" PRIu64 "}\n", id, v[i].epoch, res.seq);
        sr_free(v);
    }
    int crc = sr_engine_close(e);
    return rc || crc ? 1 : 0;
}

int sr_cmd_key_rotate_master(const sr_command *cmd, int argc, char **argv)
{
    common c = {0};
    eopts eo = {0};
    sr_args a;
    int brc = begin(cmd, argc, argv, &eo, &c, &a, 0, 1, NULL);
    if (brc != GO_ON) return brc;
    if (!eo.newkey) return sr_opts_error(cmd, "--new-key-file is required");
    sr_key nk;
    char err[256];
    if (sr_key_load(eo.newkey, &nk, err, sizeof err)) {
        fprintf(stderr, "suiro %s: %s\n", cmd->name, err);
        return 2;
    }
    sr_engine *e = key_engine(cmd, &c);
    if (!e) {
        OPENSSL_cleanse(&nk, sizeof nk);
        return 1;
    }
    sr_cmd_env env = key_env();
    sr_errinfo ei;
    memset(&ei, 0, sizeof ei);
    uint32_t old = sr_engine_master_key_id(e);
    int rc = sr_engine_key_rewrap(e, &env, &nk, eo.keep_legacy, &ei);
    int crc = sr_engine_close(e);
    uint32_t nid = nk.id;
    OPENSSL_cleanse(&nk, sizeof nk);
    if (rc) {
        fprintf(stderr, "suiro %s: %s\n", cmd->name, ei.msg[0] ? ei.msg : sr_strerror(rc));
        return 1;
    }
    printf("{\"masterKeyId\":\"%08x\",\"oldMasterKeyId\":\"%08x\"}\n", nid, old);
    fprintf(stderr, "re-wrapped: from now on %s needs the key of %s (set key_file to it)\n", c.dir, eo.newkey);
    return crc ? 1 : 0;
}

int sr_cmd_key_export(const sr_command *cmd, int argc, char **argv)
{
    common c = {0};
    eopts eo = {0};
    sr_args a;
    int brc = begin(cmd, argc, argv, &eo, &c, &a, 0, 1, NULL);
    if (brc != GO_ON) return brc;
    const char *file = a.pos[1];
    sr_engine *e = key_engine(cmd, &c);
    if (!e) return 1;
    sr_cmd_env env = key_env();
    sr_buf b;
    sr_buf_init(&b);
    int rc = sr_engine_key_export(e, &env, &b);
    int crc = sr_engine_close(e);
    if (!rc && write_new(file, b.data, b.len)) {
        fprintf(stderr, "suiro %s: %s: cannot write it (an existing file is never overwritten): %s\n", cmd->name,
                file, strerror(errno));
        rc = SR_EIO;
    } else if (rc)
        fprintf(stderr, "suiro %s: %s\n", cmd->name, sr_strerror(rc));
    if (!rc) printf("{\"exported\":\"%s\",\"bytes\":%zu}\n", file, b.len);
    sr_buf_release(&b);
    return rc || crc ? 1 : 0;
}

int sr_cmd_key_import(const sr_command *cmd, int argc, char **argv)
{
    common c = {0};
    eopts eo = {0};
    sr_args a;
    int brc = begin(cmd, argc, argv, &eo, &c, &a, 0, 1, NULL);
    if (brc != GO_ON) return brc;
    sr_key other;
    int has_other = 0;
    char err[256];
    if (eo.fromkey) {
        if (sr_key_load(eo.fromkey, &other, err, sizeof err)) {
            fprintf(stderr, "suiro %s: %s\n", cmd->name, err);
            return 2;
        }
        has_other = 1;
    }
    sr_buf in;
    sr_buf_init(&in);
    if (read_whole(a.pos[1], &in)) {
        fprintf(stderr, "suiro %s: %s: cannot read: %s\n", cmd->name, a.pos[1], strerror(errno));
        sr_buf_release(&in);
        return 1;
    }
    sr_engine *e = key_engine(cmd, &c);
    int rc = SR_EIO;
    if (e) {
        sr_cmd_env env = key_env();
        sr_errinfo ei;
        memset(&ei, 0, sizeof ei);
        size_t added = 0;
        rc = sr_engine_key_import(e, &env, in.data ? (const void *)in.data : "", in.len, has_other ? &other : NULL,
                                  &added, &ei);
        if (rc) fprintf(stderr, "suiro %s: %s\n", cmd->name, ei.msg[0] ? ei.msg : sr_strerror(rc));
        else printf("{\"imported\":%zu}\n", added);
        if (sr_engine_close(e) && !rc) rc = SR_EIO;
    }
    OPENSSL_cleanse(&other, sizeof other);
    sr_buf_release(&in);
    return rc ? 1 : 0;
}

/* suiro state DIR --at T [--operator OP] [--json]: what the platform and its
 * apps saw at T (issue #18, R-RE-2; docs/state.md). Read-only: a served
 * directory or a restored backup; the answer is api/state.c's, the same JSON
 * as GET /admin/v1/state. */
static int state_check(const sr_command *cmd, const eopts *o)
{
    if (!o->at) return sr_opts_error(cmd, "needs --at TIME");
    if (o->op && !sr_id_str_ok(o->op)) return sr_opts_error(cmd, "--operator: not an operator ID");
    return 0;
}

int sr_cmd_state(const sr_command *cmd, int argc, char **argv)
{
    common c = {0};
    eopts o = {0};
    sr_args a;
    int brc = begin(cmd, argc, argv, &o, &c, &a, 0, 1, state_check);
    if (brc != GO_ON) return brc;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t at;
    char *end;
    long long ms = strtoll(o.at, &end, 10); /* UTC ms, as the API's `at` */
    if (o.at[0] >= '0' && o.at[0] <= '9' && !*end) at = ms;
    else if (sr_time_parse(o.at, strlen(o.at), (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000, &at)) {
        fprintf(stderr, "suiro %s: --at: not a time (RFC 3339, UTC ms, now, -1h): %s\n", cmd->name, o.at);
        return 2;
    }
    sr_engine *e;
    sr_engine_opts eo = {.key = c.has_key ? &c.key : NULL, .readonly = 1, .state_full_replay = o.no_snapshot};
    sr_errinfo ei = {0};
    int rc = sr_engine_open(c.dir, &eo, &e, &ei);
    if (rc) {
        fprintf(stderr, "suiro %s: %s: %s%s\n", cmd->name, c.dir, ei.msg[0] ? ei.msg : sr_strerror(rc),
                sr_cli_key_hint(rc, c.has_key));
        return 1;
    }
    json_t *ans = sr_state_json(e, at, o.op, &rc, &ei);
    sr_engine_close(e);
    if (!ans) {
        fprintf(stderr, "suiro %s: %s: %s%s\n", cmd->name, c.dir, ei.msg[0] ? ei.msg : sr_strerror(rc),
                sr_cli_key_hint(rc, c.has_key));
        return 1;
    }
    if (o.json) {
        json_dumpf(ans, stdout, JSON_COMPACT);
        putchar('\n');
    } else {
        printf("at %s: seq %" PRIu64 ", %" PRIu64 " events replayed\n", json_string_value(json_object_get(ans, "at")),
               (uint64_t)json_integer_value(json_object_get(ans, "seq")),
               (uint64_t)json_integer_value(json_object_get(ans, "replayed")));
        size_t i;
        json_t *sec;
        json_array_foreach(json_object_get(ans, "operators"), i, sec) {
            printf("operator %s:", json_string_value(json_object_get(sec, "operator")));
            static const char *const SECS[] = {"masters", "gateways", "apps", "grants", "values",
                                               "monitors", "requests", "connected", "alarms"};
            for (size_t k = 0; k < sizeof SECS / sizeof SECS[0]; k++)
                printf(" %zu %s", json_array_size(json_object_get(sec, SECS[k])), SECS[k]);
            printf("\n");
        }
    }
    json_decref(ans);
    return 0;
}
