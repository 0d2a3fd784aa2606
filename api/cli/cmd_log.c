/*
 * api/cli/cmd_log.c -- `suiro log verify` and `suiro log dump`.
 *
 * verify exits 0 when every block verifies, 1 on corruption (the first bad
 * block is named), 2 on usage errors, 3 when the only problem is a torn tail
 * (unacknowledged bytes that the next writable open cuts), 4 when the log
 * cannot be read at all (missing, wrong key, newer format). A log inside a
 * data directory (DIR/../index exists) is checked against its index's
 * watermark: a bad tail block the index had applied is corruption (1).
 * Both commands open the log read-only and change nothing. DIR is a data
 * directory (its log/ is used) or a log directory itself.
 *
 * Format version 3 (docs/keys.md): verify with no key at all checks the
 * chain and every section's structure and says that the sealed contents
 * were not opened; sections whose key was destroyed are listed per key
 * ("erased: key 0x... N records in M sections, seq A..B") and still verify.
 * dump prints each record's key id; an erased record as
 * {"seq":N,"key_id":"...","erased":true}.
 *
 * Also here: the checks every command on a data directory shares (nothing
 * but `suiro init` creates one) and the verdicts, exit codes and JSON that
 * `suiro verify` shares with `log verify`.
 */
#include "api/cli/cli.h"
#include "codecs/jsonlex.h"
#include "engine/suiro.h"
#include "storage/keyring.h"
#include "storage/log.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct lopts {
    const char *keyfile, *from, *count;
    int json;
} lopts;

#define KEY_FILE SR_OPT_STR("key-file", 0, "FILE", lopts, keyfile, "the log's key, if it is encrypted: FILE, env:VAR or cmd:COMMAND")
const sr_opt sr_opts_log_verify[] = {
    SR_OPT_FLAG("json", 0, lopts, json, "the verdict as one JSON object"),
    KEY_FILE,
    SR_OPT_END,
};
const sr_opt sr_opts_log_dump[] = {
    SR_OPT_STR("from", 0, "SEQ", lopts, from, "the first record's sequence number [1]"),
    SR_OPT_STR("count", 0, "N", lopts, count, "at most N records [all]"),
    KEY_FILE,
    SR_OPT_END,
};
const sr_opt sr_opts_log_append[] = {KEY_FILE, SR_OPT_END};

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int sr_cli_data_dir(const char *cmd, const char *dir)
{
    char log[PATH_MAX];
    snprintf(log, sizeof log, "%s/log", dir);
    if (is_dir(log)) return 0;
    if (!cmd) return -1;
    if (!is_dir(dir))
        fprintf(stderr, "suiro %s: %s: no such data directory (`suiro init %s` creates one)\n", cmd, dir, dir);
    else
        fprintf(stderr, "suiro %s: %s is not a suiro data directory (no log/ in it; `suiro init DIR` creates one)\n",
                cmd, dir);
    return -1;
}

/* 1: dir holds a *.seg file; 0: it is empty; -1: neither (or unreadable) */
static int log_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int segs = 0, other = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (n > 4 && !strcmp(de->d_name + n - 4, ".seg")) segs++;
        else other++;
    }
    closedir(d);
    return segs ? 1 : other ? -1 : 0;
}

int sr_cli_log_dir(const char *dir, int empty_ok, char out[PATH_MAX], char *why, size_t whylen)
{
    if (!sr_cli_data_dir(NULL, dir)) {
        snprintf(out, PATH_MAX, "%s/log", dir);
        return 0;
    }
    if (!is_dir(dir)) {
        snprintf(why, whylen, "%s: no such data or log directory (`suiro init %s` creates a data directory)", dir, dir);
        return -1;
    }
    int f = log_files(dir);
    if (f == 1 || (f == 0 && empty_ok)) {
        snprintf(out, PATH_MAX, "%s", dir);
        return 0;
    }
    snprintf(why, whylen, "%s is neither a suiro data directory (no log/ in it) nor a log directory (no *.seg in it)",
             dir);
    return -1;
}

sr_keyring *sr_cli_keyring(const char *logdir, const sr_key *key, sr_log_opts *lo)
{
    if (!key) return NULL;
    char kd[PATH_MAX + 16];
    snprintf(kd, sizeof kd, "%s/../keys", logdir);
    sr_keyring *kr = NULL;
    sr_errinfo ei;
    if (sr_keyring_open(NULL, kd, key, NULL, 0, &kr, &ei)) return NULL; /* none, or the log names what it lacks */
    lo->keys = sr_keyring_keys(kr);
    return kr;
}

const char *sr_cli_key_hint(int rc, int has_key)
{
    if (rc != SR_EKEY) return "";
    return has_key ? " (the key given with --key-file is not this log's key)"
                   : " (the log is encrypted: give its key with --key-file FILE)";
}

int sr_cli_log_verdict(int rc, const sr_log_report *rep, const char **verdict)
{
    if (rc == SR_ECORRUPT && rep->tail.torn && rep->blocks && !strcmp(rep->segment, rep->tail.segment) &&
        rep->offset == rep->tail.offset) {
        *verdict = "torn-tail";
        return 3;
    }
    if (rc == SR_ECORRUPT) {
        *verdict = "corrupt";
        return 1;
    }
    if (rc) {
        *verdict = "unreadable";
        return 4;
    }
    *verdict = "ok";
    return 0;
}

/* one JSON string to f, escaped by codecs/jsonlex.c's one escaper */
static void json_str(FILE *f, const char *s)
{
    sr_buf b = {0};
    if (sr_json_put_string(&b, s, strlen(s))) fputs("null", f);
    else fwrite(b.data, 1, b.len, f);
    sr_buf_release(&b);
}

void sr_cli_log_json(FILE *f, const char *verdict, int rc, const sr_log_report *rep, const sr_errinfo *ei)
{
    char tip[2 * SR_HASH_LEN + 1];
    sr_hex(rep->tip, SR_HASH_LEN, tip);
    fprintf(f,
            "\"verdict\":\"%s\",\"code\":\"%s\",\"segments\":%" PRIu64 ",\"blocks\":%" PRIu64 ",\"records\":%" PRIu64
            ",\"bytes\":%" PRIu64 ",\"first_seq\":%" PRIu64 ",\"last_seq\":%" PRIu64 ",\"tip\":\"%s\"",
            verdict, sr_err_name(rc), rep->segments, rep->blocks, rep->records, rep->bytes, rep->first_seq,
            rep->last_seq, tip);
    fprintf(f, ",\"erased_records\":%" PRIu64 ",\"erased\":[", rep->erased_records);
    for (size_t i = 0; i < rep->nerased; i++) {
        const struct sr_log_erased *e = &rep->erased[i];
        fprintf(f, "%s{\"key_id\":\"%08x\",\"sections\":%" PRIu64 ",\"records\":%" PRIu64 ",\"first_seq\":%" PRIu64
                   ",\"last_seq\":%" PRIu64 "}",
                i ? "," : "", e->key_id, e->sections, e->records, e->first_seq, e->last_seq);
    }
    fprintf(f, "],\"unopened_records\":%" PRIu64, rep->unopened_records);
    if (rep->first_seq > 1) /* segments below were dropped (docs/keys.md "Segments") */
        fprintf(f, ",\"trim\":{\"first_kept\":%" PRIu64 ",\"checked\":%s,\"event_seq\":%" PRIu64 ",\"at_ms\":%" PRId64
                   ",\"records\":%" PRIu64 ",\"interrupted_below\":%" PRIu64 "}",
                rep->first_seq, rep->trim_checked ? "true" : "false", rep->trim_seq, rep->trim_ms, rep->trim_records,
                rep->trim_interrupted);
    if (rc) {
        fprintf(f, ",\"segment\":");
        json_str(f, rep->segment);
        fprintf(f, ",\"offset\":%" PRIu64 ",\"block_seq\":%" PRIu64 ",\"error\":", rep->offset, rep->block_seq);
        json_str(f, ei->msg);
    }
}

void sr_cli_log_notes(FILE *f, const sr_log_report *rep)
{
    if (rep->first_seq > 1 && rep->trim_checked)
        fprintf(f, "log starts at seq %" PRIu64 "; segments below trimmed at %" PRId64 " (UTC ms) by event %" PRIu64
                   " (%" PRIu64 " records dropped; the first kept block links to the hash it recorded)\n",
                rep->first_seq, rep->trim_ms, rep->trim_seq, rep->trim_records);
    else if (rep->first_seq > 1 && rep->trim_interrupted)
        fprintf(f, "log starts at seq %" PRIu64 ", inside the drop of event %" PRIu64 " (below seq %" PRIu64
                   "): interrupted; the next read-write open finishes it\n",
                rep->first_seq, rep->trim_seq, rep->trim_interrupted);
    else if (rep->first_seq > 1)
        fprintf(f, "log starts at seq %" PRIu64 "; the record of the trim below it is sealed and was not checked "
                   "(give the key with --key-file)\n",
                rep->first_seq);
    for (size_t i = 0; i < rep->nerased; i++) {
        const struct sr_log_erased *e = &rep->erased[i];
        fprintf(f, "erased: key 0x%08x %" PRIu64 " records in %" PRIu64 " sections, seq %" PRIu64 "..%" PRIu64 "\n",
                e->key_id, e->records, e->sections, e->first_seq, e->last_seq);
    }
    if (rep->erased_more)
        fprintf(f, "erased: %" PRIu64 " records in %" PRIu64 " sections in all (more keys than listed)\n",
                rep->erased_records, rep->erased_sections);
    if (rep->unopened_records)
        fprintf(f, "the chain verified without a key; %" PRIu64 " sealed records in %" PRIu64
                   " sections were not opened (give the key with --key-file to check them)\n",
                rep->unopened_records, rep->unopened_sections);
}

static int load_key(const char *path, sr_key *key)
{
    char err[256];
    if (sr_key_load(path, key, err, sizeof err)) {
        fprintf(stderr, "suiro log: %s\n", err);
        return -1;
    }
    return 0;
}

/* Keys must live outside the data directory (a copied or stolen data
 * directory must not carry its own key). */
static int key_outside(const char *keyfile, const char *dir)
{
    char k[PATH_MAX], d[PATH_MAX];
    if (!strncmp(keyfile, "file:", 5)) keyfile += 5; /* env: and cmd: name no file (realpath fails) */
    if (!realpath(keyfile, k)) return 1; /* load_key reports a missing file */
    if (!realpath(dir, d)) return 1;     /* directory not created yet */
    size_t n = strlen(d);
    if (!strncmp(k, d, n) && (k[n] == '/' || k[n] == 0)) {
        fprintf(stderr, "suiro log: key file %s is inside the data directory %s; keep keys elsewhere\n", keyfile, dir);
        return 0;
    }
    return 1;
}

int sr_cmd_log_verify(const sr_command *cmd, int argc, char **argv)
{
    lopts lo = {0};
    sr_args a;
    int rc = sr_opts_parse(cmd, argc, argv, &lo, &a);
    if (rc) return rc == SR_OPTS_HELP ? 0 : rc;
    const char *dir = a.pos[0];
    int json = lo.json;
    sr_key key;
    sr_log_opts o = {0};
    sr_log_report rep;
    sr_errinfo ei;
    memset(&rep, 0, sizeof rep);
    memset(&ei, 0, sizeof ei);
    char logdir[PATH_MAX];
    rc = SR_OK;
    if (sr_cli_log_dir(dir, 0, logdir, ei.msg, sizeof ei.msg)) rc = SR_ENOTFOUND;
    else if (lo.keyfile) {
        if (load_key(lo.keyfile, &key)) return 2;
        o.key = &key;
    }
    /* A log inside a data directory: what its index applied was durable,
     * so a bad tail below that is corruption, not torn. */
    if (!rc) {
        char parent[PATH_MAX + 8], ixp[PATH_MAX + 32];
        snprintf(parent, sizeof parent, "%s/..", logdir);
        snprintf(ixp, sizeof ixp, "%s/index/data.mdb", parent);
        sr_engine_opts eo = {0};
        if (access(ixp, R_OK) == 0 && sr_engine_index_watermark(parent, &eo, &o.durable_floor) != SR_OK)
            o.durable_floor = 0;
        sr_keyring *kr = sr_cli_keyring(logdir, o.key, &o);
        rc = sr_log_verify(logdir, &o, &rep, &ei);
        if (!rc) rc = sr_engine_log_trim_check(logdir, &o, &rep, &ei); /* a log whose start was dropped */
        sr_keyring_close(kr);
    }
    const char *verdict;
    int code = sr_cli_log_verdict(rc, &rep, &verdict);
    if (json) {
        printf("{");
        sr_cli_log_json(stdout, verdict, rc, &rep, &ei);
        printf("}\n");
    }
    if (rc == SR_OK) {
        if (!json) {
            char tip[2 * SR_HASH_LEN + 1];
            sr_hex(rep.tip, SR_HASH_LEN, tip);
            printf("ok: %" PRIu64 " segments, %" PRIu64 " blocks, %" PRIu64 " records (seq %" PRIu64 "..%" PRIu64
                   "), chain tip %s\n",
                   rep.segments, rep.blocks, rep.records, rep.first_seq, rep.last_seq, tip);
            sr_cli_log_notes(stdout, &rep);
        }
    } else
        fprintf(stderr, "%s: %s%s\n", verdict, ei.msg[0] ? ei.msg : sr_strerror(rc), sr_cli_key_hint(rc, o.key != NULL));
    return code;
}

int sr_cmd_log_dump(const sr_command *cmd, int argc, char **argv)
{
    lopts lo = {0};
    sr_args a;
    int prc = sr_opts_parse(cmd, argc, argv, &lo, &a);
    if (prc) return prc == SR_OPTS_HELP ? 0 : prc;
    const char *keyfile = lo.keyfile;
    unsigned long long from = 1, count = UINT64_MAX;
    if (lo.from && sr_cli_parse_u64(lo.from, &from))
        return sr_opts_error(cmd, "--from wants a sequence number, not '%s'", lo.from);
    if (lo.count && sr_cli_parse_u64(lo.count, &count))
        return sr_opts_error(cmd, "--count wants a number, not '%s'", lo.count);
    char dir[PATH_MAX], why[PATH_MAX + 200];
    if (sr_cli_log_dir(a.pos[0], 0, dir, why, sizeof why)) {
        fprintf(stderr, "suiro log dump: %s\n", why);
        return 4;
    }
    sr_key key;
    sr_log_opts o = {.readonly = 1};
    if (keyfile) {
        if (load_key(keyfile, &key)) return 2;
        o.key = &key;
    }
    sr_log *lg = NULL;
    sr_errinfo ei;
    sr_keyring *kr = sr_cli_keyring(dir, o.key, &o);
    int rc = sr_log_open(dir, &o, &lg, &ei);
    if (rc) {
        fprintf(stderr, "suiro log dump: %s%s\n", ei.msg, sr_cli_key_hint(rc, keyfile != NULL));
        sr_keyring_close(kr);
        return 4;
    }
    sr_log_iter *it = NULL;
    if ((rc = sr_log_iter_open(lg, from, &it))) {
        fprintf(stderr, "suiro log dump: %s\n", sr_strerror(rc));
        sr_log_close(lg);
        sr_keyring_close(kr);
        return 4;
    }
    uint64_t n = 0, seq;
    sr_slice rec;
    while (n < count && ((rc = sr_log_iter_next(it, &seq, &rec)) == SR_OK || rc == SR_EERASED)) {
        uint32_t kid = sr_log_iter_key_id(it);
        if (rc == SR_EERASED) { /* its key was destroyed: the record is gone for good */
            printf("{\"seq\":%" PRIu64 ",\"key_id\":\"%08x\",\"erased\":true}\n", seq, kid);
            n++;
            continue;
        }
        printf("{\"seq\":%" PRIu64 ",\"key_id\":\"%08x\",\"len\":%zu,\"hex\":\"", seq, kid, rec.len);
        const uint8_t *p = rec.data;
        char hx[2 * 64 + 1];
        for (size_t i = 0; i < rec.len; i += 64) {
            size_t k = rec.len - i < 64 ? rec.len - i : 64;
            sr_hex(p + i, k, hx);
            fputs(hx, stdout);
        }
        printf("\"");
        int printable = 1;
        for (size_t i = 0; i < rec.len && printable; i++) printable = p[i] >= 0x20 && p[i] < 0x7f;
        if (printable) {
            printf(",\"text\":");
            char *t = sr_malloc(rec.len + 1);
            if (t) {
                memcpy(t, rec.data, rec.len);
                t[rec.len] = 0;
                json_str(stdout, t);
                sr_free(t);
            } else
                printf("null");
        }
        printf("}\n");
        n++;
    }
    int code = 0;
    if (rc < 0 && rc != SR_EERASED) {
        fprintf(stderr, "suiro log dump: %s%s\n", sr_log_iter_errinfo(it)->msg, sr_cli_key_hint(rc, keyfile != NULL));
        code = 1;
    }
    sr_log_iter_close(it);
    sr_log_close(lg);
    sr_keyring_close(kr);
    if (fflush(stdout) != 0) code = 1;
    return code;
}

/* `suiro log append DIR`: each line of standard input becomes one record;
 * all lines read are appended as one batch, durably (sync=always). */
int sr_cmd_log_append(const sr_command *cmd, int argc, char **argv)
{
    lopts lo = {0};
    sr_args a;
    int prc = sr_opts_parse(cmd, argc, argv, &lo, &a);
    if (prc) return prc == SR_OPTS_HELP ? 0 : prc;
    const char *keyfile = lo.keyfile;
    char dir[PATH_MAX], why[PATH_MAX + 200];
    if (!sr_cli_data_dir(NULL, a.pos[0])) {
        fprintf(stderr, "suiro log append: %s is a data directory: its log holds events only (append to a log "
                        "directory of your own)\n", a.pos[0]);
        return 1;
    }
    if (sr_cli_log_dir(a.pos[0], 1, dir, why, sizeof why)) {
        fprintf(stderr, "suiro log append: %s\n", why);
        return 1;
    }
    sr_key key;
    sr_log_opts o = {.zstd_level = 1};
    if (keyfile) {
        if (!key_outside(keyfile, dir) || load_key(keyfile, &key)) return 2;
        o.key = &key;
    }
    sr_buf all;
    sr_buf_init(&all);
    char line[65536];
    size_t n = 0;
    while (fgets(line, sizeof line, stdin)) {
        size_t l = strcspn(line, "\n");
        uint8_t lenb[4];
        sr_put_le32(lenb, (uint32_t)l);
        if (sr_buf_append(&all, lenb, 4) || sr_buf_append(&all, line, l)) {
            fprintf(stderr, "suiro log append: out of memory\n");
            sr_buf_release(&all);
            return 1;
        }
        n++;
    }
    if (!n) {
        fprintf(stderr, "suiro log append: no input lines\n");
        sr_buf_release(&all);
        return 2;
    }
    sr_slice *recs = sr_calloc(n, sizeof *recs);
    size_t pos = 0;
    for (size_t i = 0; i < n && recs; i++) {
        uint32_t l = sr_get_le32(all.data + pos);
        recs[i] = (sr_slice){all.data + pos + 4, l};
        pos += 4 + l;
    }
    sr_log *lg = NULL;
    sr_errinfo ei;
    int rc = recs ? sr_log_open(dir, &o, &lg, &ei) : SR_ENOMEM;
    if (rc) {
        fprintf(stderr, "suiro log append: %s\n", recs ? ei.msg : sr_strerror(rc));
        sr_free(recs);
        sr_buf_release(&all);
        return 1;
    }
    uint64_t first = 0;
    rc = sr_log_append(lg, recs, n, &first);
    int crc = sr_log_close(lg);
    if (!rc) rc = crc;
    if (rc) fprintf(stderr, "suiro log append: %s\n", sr_strerror(rc));
    else printf("appended %zu records: seq %" PRIu64 "..%" PRIu64 "\n", n, first, first + n - 1);
    sr_free(recs);
    sr_buf_release(&all);
    return rc ? 1 : 0;
}
