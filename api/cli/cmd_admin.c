/*
 * api/cli/cmd_admin.c -- `suiro admin`: the command-line client of the
 * Admin API (/admin/v1, docs/admin.md), over libcurl.
 *
 * The server's root comes from --url or SUIRO_URL, the session token from
 * --token or SUIRO_TOKEN. `suiro admin login --user ID` asks for the
 * password (without echo, or SUIRO_PASSWORD) and the one-time code (--code,
 * or a prompt when standard input is a terminal; empty: none) and prints the
 * server's answer, the token JSON. Every other subcommand is a row of CMDS
 * below: {name, method, path template, its arguments, the JSON members of
 * its body and which option gives each}; the arguments fill the path's
 * {parameters} in order, --data JSON (or @FILE) replaces the built body,
 * and `call METHOD PATH` reaches any route of any admin file. The answer's
 * JSON is printed on stdout as the server sent it.
 *
 * How to add a subcommand: one row in CMDS (and an option in
 * sr_opts_admin if its body needs a new member).
 *
 * EXIT CODES (as apsim's): 0 success; 1 the server answered an error (its
 * error JSON is printed on stdout all the same) or a local input could not
 * be read; 2 usage; 3 the server could not be reached or the transfer broke.
 */
#include "api/cli/cli.h"
#include "codecs/base/sr_alloc.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

enum { EX_OK = 0, EX_API = 1, EX_USAGE = 2, EX_CONN = 3 };
enum { MAX_ANSWER = 64 << 20, MAX_DATA = 64 << 20, SECRET_MAX = 300 };
#define DEFAULT_URL "http://127.0.0.1:8080"

typedef struct aopts {
    const char *url, *token, *cacert, *data, *user, *code, *id, *name, *kind, *scope_kind, *scope_id, *roles,
        *current_password, *new_password, *reason, *dest, *comment, *query;
    int verbose;
} aopts;

#define OS(n, f, arg, doc) SR_OPT_STR(n, 0, arg, aopts, f, doc)
const sr_opt sr_opts_admin[] = {
    OS("url", url, "URL", "server root (default " DEFAULT_URL ", env SUIRO_URL)"),
    OS("token", token, "T", "the session token (env SUIRO_TOKEN; see `login`)"),
    OS("cacert", cacert, "FILE", "CA certificates for an https:// URL"),
    SR_OPT_FLAG("verbose", 'v', aopts, verbose, "each call on stderr: method, path, status"),
    OS("data", data, "JSON|@FILE", "the request body as it is (replaces the one built from options)"),
    OS("user", user, "ID", "login: the user"),
    OS("code", code, "DIGITS", "login, totp-confirm: the one-time code"),
    OS("id", id, "ID", "user-create, operator-create, vendor-create: the new ID"),
    OS("name", name, "NAME", "the name"),
    OS("kind", kind, "ap|gw", "vendor-create: the vendor's kind"),
    OS("scope-kind", scope_kind, "K", "user-create: platform, operator or vendor"),
    OS("scope-id", scope_id, "ID", "user-create: the operator's or vendor's ID"),
    OS("roles", roles, "R[,R...]", "user-create, user-roles: role names"),
    OS("reason", reason, "TEXT", "pending-reject, sig-require: why"),
    OS("dest", dest, "DIR", "backup: the server's [backup] directory (checked by the server)"),
    OS("comment", comment, "TEXT", "alarms ack, alarms resolve: a comment recorded with the step"),
    OS("query", query, "K=V[&K=V]", "alarms list: filters (operator, state, level, rule, since, until); state: at=TIME[&operator=OP]; report: its parameters"),
    OS("query", query, "K=V[&K=V]", "the query: alarms list's filters (operator, state, level, rule, since, until); checkpoint-at, proof-*: their parameters"),
    OS("current-password", current_password, "P", "password: the current one (else a prompt)"),
    OS("new-password", new_password, "P", "password: the new one (else a prompt)"),
    SR_OPT_END,
};

/* The JSON members a body may be built from: X(member, option field, how) */
typedef enum { M_STR, M_LIST, M_SCOPE } mkind;
typedef struct member {
    const char *name;
    size_t off; /* the option in aopts */
    mkind how;
    const char *secret_prompt; /* a password asked without echo when the option is missing */
} member;
#define MEM(n, f, how, p) {n, offsetof(aopts, f), how, p}
static const member MEMBERS[] = {
    MEM("id", id, M_STR, NULL),
    MEM("name", name, M_STR, NULL),
    MEM("kind", kind, M_STR, NULL),
    MEM("scope", scope_kind, M_SCOPE, NULL),
    MEM("roles", roles, M_LIST, NULL),
    MEM("code", code, M_STR, NULL),
    MEM("currentPassword", current_password, M_STR, "current password: "),
    MEM("newPassword", new_password, M_STR, "new password: "),
    MEM("reason", reason, M_STR, NULL),
    MEM("dest", dest, M_STR, NULL),
    MEM("comment", comment, M_STR, NULL),
};

/* One subcommand: the route, how many arguments fill its path, the body's
 * members (space-separated names of MEMBERS; NULL: no body; "@": the last
 * argument is a file, sent as it is with the Content-Type ctype). */
typedef struct acmd {
    const char *name, *method, *path;
    int nargs;
    const char *body;
    const char *doc;
    const char *ctype; /* NULL: application/json */
} acmd;

#define OPS "/admin/v1/operators/{operatorId}"

static const acmd CMDS[] = {
    {"logout", "DELETE", "/admin/v1/sessions/current", 0, NULL, "end the --token session"},
    {"me", "GET", "/admin/v1/me", 0, NULL, "who am I"},
    {"password", "PUT", "/admin/v1/me/password", 0, "currentPassword newPassword",
     "change my password [--current-password P --new-password P]"},
    {"totp-enrol", "POST", "/admin/v1/me/totp", 0, NULL, "start TOTP enrolment: prints the otpauth:// URI"},
    {"totp-confirm", "PUT", "/admin/v1/me/totp", 0, "code", "confirm it --code DIGITS"},
    {"users", "GET", "/admin/v1/users", 0, NULL, "the users of my scope"},
    {"user", "GET", "/admin/v1/users/{userId}", 1, NULL, "one user: USER"},
    {"user-create", "POST", "/admin/v1/users", 0, "id name scope roles",
     "--id ID --scope-kind K [--scope-id ID] --roles R,.. [--name N]"},
    {"user-reset", "POST", "/admin/v1/users/{userId}/password-reset", 1, NULL, "USER: a new temporary password"},
    {"user-disable", "POST", "/admin/v1/users/{userId}/disable", 1, NULL, "USER"},
    {"user-enable", "POST", "/admin/v1/users/{userId}/enable", 1, NULL, "USER"},
    {"user-delete", "DELETE", "/admin/v1/users/{userId}", 1, NULL, "USER"},
    {"user-roles", "PUT", "/admin/v1/users/{userId}/roles", 1, "roles", "USER --roles R,.."},
    {"user-sessions-revoke", "DELETE", "/admin/v1/users/{userId}/sessions", 1, NULL, "USER: end its sessions"},
    {"user-totp-reset", "DELETE", "/admin/v1/users/{userId}/totp", 1, NULL, "USER: remove its TOTP"},
    {"operators", "GET", "/admin/v1/operators", 0, NULL, "the operators"},
    {"operator", "GET", "/admin/v1/operators/{operatorId}", 1, NULL, "OP"},
    {"operator-create", "POST", "/admin/v1/operators", 0, "id name", "--id ID --name N"},
    {"operator-rename", "PUT", "/admin/v1/operators/{operatorId}", 1, "name", "OP --name N"},
    {"operator-delete", "DELETE", "/admin/v1/operators/{operatorId}", 1, NULL, "OP"},
    {"vendors", "GET", "/admin/v1/vendors", 0, NULL, "the vendors"},
    {"vendor", "GET", "/admin/v1/vendors/{vendorId}", 1, NULL, "VENDOR"},
    {"vendor-create", "POST", "/admin/v1/vendors", 0, "id name kind", "--id ID --name N --kind ap|gw"},
    {"vendor-rename", "PUT", "/admin/v1/vendors/{vendorId}", 1, "name", "VENDOR --name N"},
    {"vendor-delete", "DELETE", "/admin/v1/vendors/{vendorId}", 1, NULL, "VENDOR"},
    /* an operator's set-up (api/admin_setup.c); bodies of PUTs: --data JSON */
    {"sheet-import", "POST", OPS "/sheet", 2, "@", "OP FILE: import a set-up sheet", "text/csv"},
    {"sheet-export", "GET", OPS "/sheet", 1, NULL, "OP: the set-up sheet (CSV)"},
    {"masters", "GET", OPS "/masters/{kind}", 2, NULL, "OP KIND (facilities, equipment, devices, datapoints)"},
    {"master-put", "PUT", OPS "/masters/{kind}/{id}", 3, NULL, "OP KIND ID --data '{sheet columns}'"},
    {"master-deactivate", "POST", OPS "/masters/{kind}/{id}/deactivate", 3, NULL, "OP KIND ID"},
    {"gateways", "GET", OPS "/gateways", 1, NULL, "OP"},
    {"gateway-put", "PUT", OPS "/gateways/{gatewayId}", 2, NULL, "OP GW --data '{name, secret, vendorId}'"},
    {"gateway-delete", "DELETE", OPS "/gateways/{gatewayId}", 2, NULL, "OP GW"},
    {"gateway-secret", "POST", OPS "/gateways/{gatewayId}/secret", 2, NULL, "OP GW: a new secret (printed once)"},
    {"gateway-cert", "PUT", OPS "/gateways/{gatewayId}/certificate", 3, "@", "OP GW PEMFILE", "application/x-pem-file"},
    {"gateway-disable", "POST", OPS "/gateways/{gatewayId}/disable", 2, NULL, "OP GW"},
    {"gateway-enable", "POST", OPS "/gateways/{gatewayId}/enable", 2, NULL, "OP GW"},
    {"apps", "GET", OPS "/apps", 1, NULL, "OP"},
    {"app-put", "PUT", OPS "/apps/{appId}", 2, NULL, "OP APP --data '{name, secret, pushUrl, vendorId}'"},
    {"app-delete", "DELETE", OPS "/apps/{appId}", 2, NULL, "OP APP"},
    {"app-secret", "POST", OPS "/apps/{appId}/secret", 2, NULL, "OP APP: a new secret (printed once)"},
    {"app-cert", "PUT", OPS "/apps/{appId}/certificate", 3, "@", "OP APP PEMFILE", "application/x-pem-file"},
    {"app-push-url", "PUT", OPS "/apps/{appId}/push-url", 2, NULL, "OP APP --data '{\"pushUrl\": URL}'"},
    {"app-disable", "POST", OPS "/apps/{appId}/disable", 2, NULL, "OP APP"},
    {"app-enable", "POST", OPS "/apps/{appId}/enable", 2, NULL, "OP APP"},
    {"grants", "GET", OPS "/apps/{appId}/grants", 2, NULL, "OP APP"},
    {"grants-put", "PUT", OPS "/apps/{appId}/grants", 2, NULL, "OP APP --data '{\"grants\": [{dataId, access}]}'"},
    {"grant-delete", "DELETE", OPS "/apps/{appId}/grants/{dataId}", 3, NULL, "OP APP DATAID"},
    {"vendor-grants", "GET", OPS "/vendor-grants", 1, NULL, "OP: the vendors OP grants read access to its data"},
    {"vendor-grant-put", "PUT", OPS "/vendor-grants/{vendorId}", 2, NULL, "OP VENDOR --data '{\"access\": \"read\"}'"},
    {"vendor-grant-delete", "DELETE", OPS "/vendor-grants/{vendorId}", 2, NULL, "OP VENDOR: revoke it"},
    /* the two-person rule (api/admin_pending.c): a privilege change answered 202 waits for a second admin */
    {"pending", "GET", "/admin/v1/pending", 0, NULL, "the pending changes I made or may decide"},
    {"pending-get", "GET", "/admin/v1/pending/{pendingId}", 1, NULL, "ID"},
    {"pending-approve", "POST", "/admin/v1/pending/{pendingId}/approve", 1, NULL, "ID: apply it (a second admin)"},
    {"pending-reject", "POST", "/admin/v1/pending/{pendingId}/reject", 1, "reason", "ID --reason TEXT"},
    /* backups of the served data directory (api/admin_backup.c, docs/backup.md) */
    {"backup", "POST", "/admin/v1/backups", 0, "dest", "take a backup into the [backup] directory [--dest DIR]"},
    {"backups", "GET", "/admin/v1/backups", 0, NULL, "the backups of the [backup] directory (S, time, size, verified)"},
    /* retention (api/admin_retention.c, docs/retention.md) */
    {"retention", "GET", OPS "/retention", 1, NULL, "OP: its retention periods per class and the defaults"},
    {"retention-put", "PUT", OPS "/retention/{class}", 2, NULL, "OP CLASS --data '{\"days\": N}' (0: for ever)"},
    {"retention-run", "POST", "/admin/v1/retention/run", 0, NULL, "a retention sweep now (what it cut)"},
    /* alarm notification targets (api/admin_notify.c, docs/monitoring.md) */
    {"notify-targets", "GET", OPS "/notify/targets", 1, NULL, "OP: its alarm notification targets"},
    {"notify-target-add", "POST", OPS "/notify/targets", 1, NULL,
     "OP --data '{\"id\":ID,\"mail\":ADDR|\"url\":URL,\"level\":\"warning|minor|major\"}'"},
    {"notify-target-delete", "DELETE", OPS "/notify/targets/{targetId}", 2, NULL, "OP ID"},
    {"notify-domains", "GET", OPS "/notify/mail-domains", 1, NULL, "OP: its own mail domains and the platform's"},
    {"notify-domains-put", "PUT", OPS "/notify/mail-domains", 1, NULL,
     "OP --data '{\"domains\":[D,...]}' (a subset of [notify] mail_allowed_domains; []: none of its own)"},
    /* alarms (api/admin_alarms.c, docs/monitoring.md "Alarms"); also written `alarms list`, `alarms show`, ... */
    {"alarms-list", "GET", "/admin/v1/alarms", 0, NULL, "the alarms I may see [--query state=open&level=major...]"},
    {"state", "GET", "/admin/v1/state", 0, NULL,
     "the state at a past time --query at=TIME[&operator=OP] (docs/state.md)"},
    {"alarms-show", "GET", "/admin/v1/alarms/{alarmId}", 1, NULL, "ALARM"},
    {"alarms-ack", "POST", "/admin/v1/alarms/{alarmId}/ack", 1, "comment", "ALARM [--comment TEXT]: acknowledge it"},
    {"alarms-resolve", "POST", "/admin/v1/alarms/{alarmId}/resolve", 1, "comment", "ALARM [--comment TEXT]: resolve it"},
    /* the alive status (api/admin_alive.c, docs/monitoring.md; filters: call GET '/admin/v1/alive?operator=OP&kind=gateway&state=offline') */
    {"alive", "GET", "/admin/v1/alive", 0, NULL, "the alive status of my operator's gateways and apps (the platform: all)"},
    /* the cluster mode's ownership (api/cluster_own.c, docs/cluster.md "Ownership") */
    {"cluster", "GET", "/admin/v1/cluster", 0, NULL,
     "this node, the live nodes, each partition's owner, epoch and lease end, the partitions this node owns"},
    {"cluster-digest", "GET", "/admin/v1/cluster/partitions/{partition}/digest", 1, NULL,
     "PARTITION: this node's index digest of the partition (per data point: count, hash; `suiro cluster verify`)"},
    /* a stream key's erasure, recorded in the log (api/admin_keys.c, docs/keys.md "Cluster: stream keys") */
    {"cluster-key-erase", "POST", "/admin/v1/cluster/keys/{keyId}/erase", 1, NULL,
     "KEYID: erase the cluster's stream key KEYID (16 hex digits, `suiro cluster keys`)"},
    {"report", "GET", "/admin/v1/reports/incident", 0, NULL,
     "an incident report --query 'from=-1h&to=now[&operator=OP&gateway=GW&point=P1,P2&format=html]'"},
    /* certificate revocations (api/admin_sig.c, docs/signatures.md) */
    {"revocations", "GET", OPS "/revocations", 1, NULL, "OP: its revoked app and gateway certificates"},
    {"revocation-add", "POST", OPS "/revocations", 1, NULL,
     "OP --data '{\"certId\":\"ID#SERIAL\",\"reason\":TEXT}': revoke a certificate"},
    {"revocation-delete", "DELETE", OPS "/revocations/{subjectId}/{serial}", 3, NULL, "OP ID SERIAL: withdraw it"},
    /* signature requirements per data point (api/admin_sig.c, docs/signatures.md "Requiring signatures") */
    {"sig-requirements", "GET", OPS "/signature-requirements", 1, NULL, "OP: its data points whose control must be signed"},
    {"sig-require", "PUT", OPS "/signature-requirements/{dataId}", 2, "reason",
     "OP DATAID --reason TEXT: control of the data point must be signed"},
    {"sig-require-delete", "DELETE", OPS "/signature-requirements/{dataId}", 2, NULL, "OP DATAID: lift it"},
    /* signed checkpoints and proofs (api/admin_tlog.c, docs/audit.md "Checkpoints and proofs"; the auditor's);
     * parameters as a query: call GET '/admin/v1/audit/proofs/inclusion?seq=N&treeSize=S' */
    {"checkpoint", "GET", "/admin/v1/audit/checkpoints/latest", 0, NULL, "the latest signed checkpoint (its C2SP note)"},
    {"checkpoint-at", "GET", "/admin/v1/audit/checkpoints", 0, NULL, "the checkpoint at or before a time: --query at=T"},
    {"proof-inclusion", "GET", "/admin/v1/audit/proofs/inclusion", 0, NULL,
     "the inclusion proof of a record: --query seq=N&treeSize=S"},
    {"proof-consistency", "GET", "/admin/v1/audit/proofs/consistency", 0, NULL,
     "the consistency proof of two tree sizes: --query from=M&to=N"},
};
enum { NCMDS = sizeof CMDS / sizeof CMDS[0] };

const char sr_admin_more[] =
    "commands:\n"
    "  login --user ID [--code DIGITS]   print the token JSON (password: prompt or SUIRO_PASSWORD)\n"
    "  call METHOD PATH [--data JSON|@FILE]   any /admin/v1 route\n"
    "  logout | me | password | totp-enrol | totp-confirm | users | user | user-create\n"
    "  user-reset | user-disable | user-enable | user-delete | user-roles\n"
    "  user-sessions-revoke | user-totp-reset | operators | operator | operator-create\n"
    "  operator-rename | operator-delete | vendors | vendor | vendor-create | vendor-rename\n"
    "  vendor-delete | sheet-import | sheet-export | masters | master-put | master-deactivate\n"
    "  gateways | gateway-put | gateway-delete | gateway-secret | gateway-cert | gateway-disable\n"
    "  gateway-enable | apps | app-put | app-delete | app-secret | app-cert | app-push-url\n"
    "  app-disable | app-enable | grants | grants-put | grant-delete | vendor-grants\n"
    "  vendor-grant-put | vendor-grant-delete | pending | pending-get | pending-approve\n"
    "  pending-reject | backup | backups | retention | retention-put | retention-run | alive\n"
    "  cluster | cluster-digest | cluster-key-erase\n"
    "  notify-targets | notify-target-add | notify-target-delete | notify-domains\n"
    "  notify-domains-put | revocations | revocation-add | revocation-delete\n"
    "  sig-requirements | sig-require | sig-require-delete\n"
    "  notify-domains-put | checkpoint | checkpoint-at | proof-inclusion | proof-consistency\n"
    "  alarms list | alarms show | alarms ack | alarms resolve (or alarms-list, ...)\n"
    "                           (`suiro admin help` lists each with its route)\n"
    "\nexit: 0 ok, 1 error answer (printed), 2 usage, 3 server not reachable\n";

/* ---- prompts ------------------------------------------------------------------- */

/* A line from the terminal (no echo when secret), at most cap - 1 bytes;
 * 0, or -1 when there is no terminal. */
static int prompt(const char *what, int secret, char *out, size_t cap)
{
    FILE *tty = fopen("/dev/tty", "r+");
    if (!tty) return -1;
    struct termios old, now;
    int fd = fileno(tty), restore = 0;
    if (secret && tcgetattr(fd, &old) == 0) {
        now = old;
        now.c_lflag &= ~(tcflag_t)ECHO;
        restore = tcsetattr(fd, TCSAFLUSH, &now) == 0;
    }
    fputs(what, tty);
    fflush(tty);
    int rc = fgets(out, (int)cap, tty) ? 0 : -1;
    if (restore) {
        tcsetattr(fd, TCSAFLUSH, &old);
        fputs("\n", tty);
    }
    fclose(tty);
    if (!rc) out[strcspn(out, "\r\n")] = 0;
    return rc;
}

/* ---- one call ------------------------------------------------------------------ */

static size_t to_buf(char *p, size_t size, size_t n, void *ud)
{
    sr_buf *b = ud;
    size_t len = size * n;
    if (b->len + len > MAX_ANSWER || sr_buf_append(b, p, len)) return 0;
    return len;
}

/* method path with body (NULL: none) on the server; prints the answer.
 * The exit code. */
static int call(const aopts *o, const char *method, const char *path, const char *body, const char *ctype)
{
    const char *base = o->url ? o->url : getenv("SUIRO_URL") ? getenv("SUIRO_URL") : DEFAULT_URL;
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/') bl--;
    char *url = malloc(bl + strlen(path) + 1);
    CURL *c = curl_easy_init();
    if (!url || !c) {
        free(url);
        if (c) curl_easy_cleanup(c);
        fprintf(stderr, "suiro admin: out of memory\n");
        return EX_API;
    }
    memcpy(url, base, bl);
    strcpy(url + bl, path);
    sr_buf ans;
    sr_buf_init(&ans);
    char errbuf[CURL_ERROR_SIZE] = "", auth[300] = "";
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    const char *tok = o->token ? o->token : getenv("SUIRO_TOKEN");
    if (tok && tok[0]) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
        h = curl_slist_append(h, auth);
    }
    char ct[80];
    snprintf(ct, sizeof ct, "Content-Type: %s", ctype ? ctype : "application/json");
    if (body) h = curl_slist_append(h, ct);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "suiro-admin/0.1");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 600000L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    if (o->cacert) curl_easy_setopt(c, CURLOPT_CAINFO, o->cacert);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, to_buf);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &ans);
    if (body || !strcmp(method, "POST") || !strcmp(method, "PUT")) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? strlen(body) : 0));
    }
    if (strcmp(method, body || !strcmp(method, "PUT") ? "POST" : "GET"))
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (o->verbose) fprintf(stderr, "admin: %s %s -> %ld\n", method, path, status);
    int rc;
    if (cc == CURLE_WRITE_ERROR) {
        fprintf(stderr, "suiro admin: the answer is too large\n");
        rc = EX_API;
    } else if (cc != CURLE_OK) {
        fprintf(stderr, "suiro admin: %s: %s\n", url, errbuf[0] ? errbuf : curl_easy_strerror(cc));
        rc = EX_CONN;
    } else {
        if (ans.len) {
            fwrite(ans.data, 1, ans.len, stdout);
            if (ans.data[ans.len - 1] != '\n') fputc('\n', stdout);
        }
        rc = status >= 200 && status < 300 ? EX_OK : EX_API;
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    sr_buf_release(&ans);
    free(url);
    return rc;
}

/* ---- bodies -------------------------------------------------------------------- */

/* --data: the text, or @FILE's content; NULL (reported) on failure */
static char *data_text(const char *d)
{
    if (d[0] != '@') return strdup(d);
    FILE *f = fopen(d + 1, "rb");
    if (!f) {
        fprintf(stderr, "suiro admin: --data %s: cannot open\n", d);
        return NULL;
    }
    sr_buf b;
    sr_buf_init(&b);
    char chunk[65536];
    size_t n;
    int bad = 0;
    while (!bad && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        bad = b.len + n > MAX_DATA || sr_buf_append(&b, chunk, n);
    bad |= ferror(f) || sr_buf_append(&b, "", 1);
    fclose(f);
    if (bad) {
        fprintf(stderr, "suiro admin: --data %s: cannot read (or larger than 64 MiB)\n", d);
        sr_buf_release(&b);
        return NULL;
    }
    return (char *)b.data; /* taken */
}

/* the body of row r from the options: its members that are given (a missing
 * password is asked for); NULL with *rc set on failure */
static char *build_body(const sr_command *cmd, const aopts *o, const acmd *r, int *rc)
{
    json_t *b = json_object();
    char names[128], secret[SECRET_MAX];
    snprintf(names, sizeof names, "%s", r->body);
    for (char *save = NULL, *w = strtok_r(names, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        const member *m = NULL;
        for (size_t i = 0; i < sizeof MEMBERS / sizeof MEMBERS[0]; i++)
            if (!strcmp(MEMBERS[i].name, w)) m = &MEMBERS[i];
        if (!m) continue; /* test_admin_cli: every row's members are MEMBERS' */
        const char *v = *(const char *const *)((const char *)o + m->off);
        if (!v && m->secret_prompt) {
            if (prompt(m->secret_prompt, 1, secret, sizeof secret)) {
                json_decref(b);
                *rc = sr_opts_error(cmd, "%s: --%s is required (no terminal to ask on)", r->name,
                                    !strcmp(w, "currentPassword") ? "current-password" : "new-password");
                return NULL;
            }
            v = secret;
        }
        if (!v) continue;
        if (m->how == M_STR) json_object_set_new(b, w, json_string(v));
        else if (m->how == M_LIST) {
            json_t *a = json_array();
            char *copy = strdup(v);
            for (char *s2 = NULL, *x = copy ? strtok_r(copy, ",", &s2) : NULL; x; x = strtok_r(NULL, ",", &s2))
                json_array_append_new(a, json_string(x));
            free(copy);
            json_object_set_new(b, w, a);
        } else {
            json_t *s = json_pack("{s:s}", "kind", v);
            if (o->scope_id) json_object_set_new(s, "id", json_string(o->scope_id));
            json_object_set_new(b, w, s);
        }
    }
    memset(secret, 0, sizeof secret);
    char *t = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    if (!t) *rc = EX_API;
    return t;
}

/* the path of row r with its {parameters} filled from args, percent-encoded */
static char *fill_path(const acmd *r, char **args)
{
    sr_buf p;
    sr_buf_init(&p);
    int k = 0, bad = 0;
    for (const char *t = r->path; *t && !bad;) {
        if (*t != '{') {
            bad = sr_buf_append(&p, t++, 1);
            continue;
        }
        const char *close = strchr(t, '}');
        char *esc = curl_easy_escape(NULL, args[k++], 0);
        bad = !esc || sr_buf_append(&p, esc, strlen(esc));
        curl_free(esc);
        t = close ? close + 1 : t + strlen(t);
    }
    if (bad || sr_buf_append(&p, "", 1)) {
        sr_buf_release(&p);
        return NULL;
    }
    return (char *)p.data;
}

static int login(const sr_command *cmd, const aopts *o)
{
    if (!o->user) return sr_opts_error(cmd, "login: --user ID is required");
    char pw[SECRET_MAX] = "", code[32] = "";
    const char *env = getenv("SUIRO_PASSWORD");
    if (env) snprintf(pw, sizeof pw, "%s", env);
    else if (prompt("password: ", 1, pw, sizeof pw))
        return sr_opts_error(cmd, "login: no terminal to ask the password on (set SUIRO_PASSWORD)");
    if (o->code) snprintf(code, sizeof code, "%s", o->code);
    else if (!env && isatty(0)) (void)prompt("one-time code (empty: none): ", 0, code, sizeof code);
    json_t *b = json_pack("{s:s,s:s}", "userId", o->user, "password", pw);
    if (code[0]) json_object_set_new(b, "code", json_string(code));
    char *t = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    memset(pw, 0, sizeof pw);
    int rc = t ? call(o, "POST", "/admin/v1/sessions", t, NULL) : EX_API;
    if (t) {
        memset(t, 0, strlen(t));
        free(t);
    }
    return rc;
}

int sr_cmd_admin(const sr_command *cmd, int argc, char **argv)
{
    aopts o = {0};
    sr_args a;
    int rc = sr_opts_parse(cmd, argc, argv, &o, &a);
    if (rc) return rc == SR_OPTS_HELP ? 0 : rc;
    const char *name = a.pos[0];
    if (!strcmp(name, "help")) {
        for (size_t i = 0; i < NCMDS; i++)
            printf("  %-22s %-6s %-44s %s\n", CMDS[i].name, CMDS[i].method, CMDS[i].path, CMDS[i].doc);
        return 0;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (!strcmp(name, "login")) {
        if (a.npos != 1) rc = sr_opts_error(cmd, "login takes no argument: %s", a.pos[1]);
        else rc = login(cmd, &o);
        curl_global_cleanup();
        return rc;
    }
    const acmd *r = NULL;
    acmd callrow;
    if (!strcmp(name, "call")) {
        if (a.npos != 3) {
            curl_global_cleanup();
            return sr_opts_error(cmd, "call METHOD PATH: %s", a.npos < 3 ? "METHOD and PATH are required" : "too many arguments");
        }
        callrow = (acmd){"call", a.pos[1], a.pos[2], 0, NULL, ""};
        r = &callrow;
    } else {
        for (size_t i = 0; i < NCMDS; i++)
            if (!strcmp(CMDS[i].name, name)) r = &CMDS[i];
        /* two words ("alarms list") name the row of the two joined by '-' */
        char two[64];
        if (!r && a.npos >= 2 && snprintf(two, sizeof two, "%s-%s", name, a.pos[1]) < (int)sizeof two)
            for (size_t i = 0; i < NCMDS; i++)
                if (!strcmp(CMDS[i].name, two)) {
                    r = &CMDS[i];
                    for (int k = 1; k + 1 < a.npos; k++) a.pos[k] = a.pos[k + 1];
                    a.npos--;
                }
    }
    if (!r) {
        curl_global_cleanup();
        return sr_opts_error(cmd, "unknown command '%s' (suiro admin help lists them)", name);
    }
    if (r != &callrow && a.npos - 1 != r->nargs) {
        curl_global_cleanup();
        return sr_opts_error(cmd, "%s takes %d argument%s: %s", r->name, r->nargs, r->nargs == 1 ? "" : "s", r->doc);
    }
    char *body = NULL, *path = NULL;
    rc = EX_OK;
    if (r->body && !strcmp(r->body, "@")) { /* the last argument: the file sent as the body */
        char *at = malloc(strlen(a.pos[r->nargs]) + 2);
        if (at) sprintf(at, "@%s", a.pos[r->nargs]);
        if (!at || !(body = data_text(at))) rc = EX_API;
        free(at);
    } else if (o.data) {
        if (!(body = data_text(o.data))) rc = EX_API;
    } else if (r->body)
        body = build_body(cmd, &o, r, &rc);
    if (!rc) {
        path = r == &callrow ? strdup(r->path) : fill_path(r, (char **)&a.pos[1]);
        if (path && o.query && o.query[0]) { /* the filters as they are (the server checks them) */
            char *q = malloc(strlen(path) + strlen(o.query) + 2);
            if (q) sprintf(q, "%s?%s", path, o.query);
            free(path);
            path = q;
        }
        rc = path ? call(&o, r->method, path, body, r->ctype) : EX_API;
    }
    free(path);
    if (body) {
        memset(body, 0, strlen(body));
        free(body);
    }
    curl_global_cleanup();
    return rc;
}
