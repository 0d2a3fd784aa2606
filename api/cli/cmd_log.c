/*
 * api/cli/cmd_log.c -- `suiro log verify` and `suiro log dump`.
 *
 * verify exits 0 when every block verifies, 1 on corruption (the first bad
 * block is named), 2 on usage errors, 3 when the only problem is a torn tail
 * (unacknowledged bytes that the next writable open cuts), 4 when the log
 * cannot be read at all (missing, wrong key, newer format). A log inside a
 * data directory (DIR/../index exists) is checked against its index's
 * watermark: a bad tail block the index had applied is corruption (1).
 * Both commands open the log read-only and change nothing.
 */
#include "api/cli/cli.h"
#include "engine/suiro.h"
#include "storage/log.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
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
    if (!realpath(keyfile, k)) return 1; /* load_key reports a missing file */
    if (!realpath(dir, d)) return 1;     /* directory not created yet */
    size_t n = strlen(d);
    if (!strncmp(k, d, n) && (k[n] == '/' || k[n] == 0)) {
        fprintf(stderr, "suiro log: key file %s is inside the data directory %s; keep keys elsewhere\n", keyfile, dir);
        return 0;
    }
    return 1;
}

static int cmd_verify(int argc, char **argv)
{
    const char *dir = NULL, *keyfile = NULL;
    int json = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--key-file") && i + 1 < argc) keyfile = argv[++i];
        else if (!strcmp(argv[i], "--help")) {
            printf("usage: suiro log verify DIR [--key-file F] [--json]\n"
                   "exit: 0 ok, 1 corrupt, 2 usage, 3 torn tail only, 4 unreadable\n");
            return 0;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "suiro log verify: unknown option '%s'\n", argv[i]);
            return 2;
        } else if (!dir) dir = argv[i];
        else {
            fprintf(stderr, "suiro log verify: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!dir) {
        fprintf(stderr, "usage: suiro log verify DIR [--key-file F] [--json]\n");
        return 2;
    }
    sr_key key;
    sr_log_opts o = {0};
    if (keyfile) {
        if (load_key(keyfile, &key)) return 2;
        o.key = &key;
    }
    /* A log inside a data directory (DIR = <data>/log): what its index
     * applied was durable, so a bad tail below that is corruption, not torn. */
    {
        char parent[PATH_MAX], ixp[PATH_MAX + 32];
        snprintf(parent, sizeof parent, "%s/..", dir);
        snprintf(ixp, sizeof ixp, "%s/index/data.mdb", parent);
        sr_engine_opts eo = {0};
        if (access(ixp, R_OK) == 0 && sr_engine_index_watermark(parent, &eo, &o.durable_floor) != SR_OK)
            o.durable_floor = 0;
    }
    sr_log_report rep;
    sr_errinfo ei;
    int rc = sr_log_verify(dir, &o, &rep, &ei);
    int code = 0;
    const char *verdict = "ok";
    if (rc == SR_ECORRUPT && rep.tail.torn && rep.blocks && !strcmp(rep.segment, rep.tail.segment) &&
        rep.offset == rep.tail.offset) {
        code = 3;
        verdict = "torn-tail";
    } else if (rc == SR_ECORRUPT) {
        code = 1;
        verdict = "corrupt";
    } else if (rc) {
        code = 4;
        verdict = "unreadable";
    }
    char tip[2 * SR_HASH_LEN + 1];
    sr_hex(rep.tip, SR_HASH_LEN, tip);
    if (json) {
        printf("{\"verdict\":\"%s\",\"code\":\"%s\",\"segments\":%" PRIu64 ",\"blocks\":%" PRIu64
               ",\"records\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"first_seq\":%" PRIu64 ",\"last_seq\":%" PRIu64
               ",\"tip\":\"%s\"",
               verdict, sr_err_name(rc), rep.segments, rep.blocks, rep.records, rep.bytes, rep.first_seq,
               rep.last_seq, tip);
        if (rc) {
            printf(",\"segment\":");
            json_str(stdout, rep.segment);
            printf(",\"offset\":%" PRIu64 ",\"block_seq\":%" PRIu64 ",\"error\":", rep.offset, rep.block_seq);
            json_str(stdout, ei.msg);
        }
        printf("}\n");
    } else if (rc == SR_OK) {
        printf("ok: %" PRIu64 " segments, %" PRIu64 " blocks, %" PRIu64 " records (seq %" PRIu64 "..%" PRIu64
               "), chain tip %s\n",
               rep.segments, rep.blocks, rep.records, rep.first_seq, rep.last_seq, tip);
    } else {
        printf("%s: %s\n", verdict, ei.msg[0] ? ei.msg : sr_strerror(rc));
    }
    return code;
}

static int cmd_dump(int argc, char **argv)
{
    const char *dir = NULL, *keyfile = NULL;
    unsigned long long from = 1, count = UINT64_MAX;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--from") && i + 1 < argc) {
            if (sr_cli_parse_u64(argv[++i], &from)) {
                fprintf(stderr, "suiro log dump: --from wants a sequence number, got '%s'\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--count") && i + 1 < argc) {
            if (sr_cli_parse_u64(argv[++i], &count)) {
                fprintf(stderr, "suiro log dump: --count wants a number, got '%s'\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--key-file") && i + 1 < argc) keyfile = argv[++i];
        else if (!strcmp(argv[i], "--help")) {
            printf("usage: suiro log dump DIR [--from SEQ] [--count N] [--key-file F]\n"
                   "prints one JSON object per record: {\"seq\":N,\"len\":L,\"hex\":\"...\"}\n");
            return 0;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "suiro log dump: unknown option '%s'\n", argv[i]);
            return 2;
        } else if (!dir) dir = argv[i];
        else {
            fprintf(stderr, "suiro log dump: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!dir) {
        fprintf(stderr, "usage: suiro log dump DIR [--from SEQ] [--count N] [--key-file F]\n");
        return 2;
    }
    sr_key key;
    sr_log_opts o = {.readonly = 1};
    if (keyfile) {
        if (load_key(keyfile, &key)) return 2;
        o.key = &key;
    }
    sr_log *lg = NULL;
    sr_errinfo ei;
    int rc = sr_log_open(dir, &o, &lg, &ei);
    if (rc) {
        fprintf(stderr, "suiro log dump: %s\n", ei.msg);
        return 4;
    }
    sr_log_iter *it = NULL;
    if ((rc = sr_log_iter_open(lg, from, &it))) {
        fprintf(stderr, "suiro log dump: %s\n", sr_strerror(rc));
        sr_log_close(lg);
        return 4;
    }
    uint64_t n = 0, seq;
    sr_slice rec;
    static const char hx[] = "0123456789abcdef";
    while (n < count && (rc = sr_log_iter_next(it, &seq, &rec)) == SR_OK) {
        printf("{\"seq\":%" PRIu64 ",\"len\":%zu,\"hex\":\"", seq, rec.len);
        const uint8_t *p = rec.data;
        for (size_t i = 0; i < rec.len; i++) {
            putchar(hx[p[i] >> 4]);
            putchar(hx[p[i] & 15]);
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
    if (rc < 0) {
        fprintf(stderr, "suiro log dump: %s\n", sr_log_iter_errinfo(it)->msg);
        code = 1;
    }
    sr_log_iter_close(it);
    sr_log_close(lg);
    if (fflush(stdout) != 0) code = 1;
    return code;
}

/* `suiro log append DIR`: each line of standard input becomes one record;
 * all lines read are appended as one batch, durably (sync=always). */
static int cmd_append(int argc, char **argv)
{
    const char *dir = NULL, *keyfile = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--key-file") && i + 1 < argc) keyfile = argv[++i];
        else if (!strcmp(argv[i], "--help")) {
            printf("usage: suiro log append DIR [--key-file F] < lines\n"
                   "appends each input line as one record (one atomic batch), durably\n");
            return 0;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "suiro log append: unknown option '%s'\n", argv[i]);
            return 2;
        } else if (!dir) dir = argv[i];
        else {
            fprintf(stderr, "suiro log append: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!dir) {
        fprintf(stderr, "usage: suiro log append DIR [--key-file F] < lines\n");
        return 2;
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

int sr_cmd_log(int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help")) {
        fprintf(argc < 1 ? stderr : stdout, "usage: suiro log verify|dump|append DIR ...\n");
        return argc < 1 ? 2 : 0;
    }
    if (!strcmp(argv[0], "verify")) return cmd_verify(argc - 1, argv + 1);
    if (!strcmp(argv[0], "dump")) return cmd_dump(argc - 1, argv + 1);
    if (!strcmp(argv[0], "append")) return cmd_append(argc - 1, argv + 1);
    fprintf(stderr, "suiro log: unknown subcommand '%s' (verify, dump, append)\n", argv[0]);
    return 2;
}
