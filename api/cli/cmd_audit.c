/*
 * api/cli/cmd_audit.c -- `suiro audit verify DIR`: a data directory (served
 * or stopped) or a backup (`suiro backup`'s DEST/NAME: the same log/,
 * index/ and platform-cert.pem) checked against its signed checkpoints
 * (issue #18, R-SE-5, R-RE-3; docs/audit.md "Checking a whole directory").
 *
 * What it does, read-only (no lock: as `suiro verify`):
 *  1. The chain: sr_log_verify (every block's checksums and the hash chain;
 *     with --key-file also every sealed section opened).
 *  2. The tree, recomputed from the log's blocks alone: one leaf a block,
 *     leaf data = the header's first 88 bytes || SHA-256(stored payload)
 *     (sr_log_leaf_next: no key, so it works after crypto-shredding). A
 *     trimmed log starts from the frontier its LogTrim carried, as the
 *     index keeps it (the tree's base).
 *  3. The checkpoints: every one the index's `mtree` database keeps (the
 *     CheckpointEvents the writer applied; their note's fields must equal
 *     the event's) and every note of --checkpoints FILE (the notes an
 *     auditor kept: the ones a forger cannot delete). A checkpoint's
 *     authority is its signature, not where it was stored. For each: the
 *     note's signature against the platform certificate (--cert, default
 *     DIR/platform-cert.pem); the recomputed tree of its size has its root;
 *     its tip is the chain hash of that tree's last block; its last seq is
 *     that block's last record. One of size below a trim's base is checked
 *     for its signature only (its tree's nodes went with the segments); one
 *     of size equal to the base against the carried frontier.
 *  On the first failure (the smallest tree it concerns) it names the first
 *  broken record -- its seq, its block's seqs, its leaf, the segment file and
 *  the block's offset in it -- and the checkpoint that disproves it (its
 *  size, time, where it came from and its note's first lines); exit 1. A
 *  root that differs is narrowed to one block by the index's leaf rows
 *  (written when the block was appended) between the last checkpoint that
 *  holds and the first that does not; when they agree too (a rewritten index)
 *  the range is named.
 *
 * Exit: 0 all holds (a summary), 1 broken (named), 3 all holds but the log
 * has a torn tail (a crash mid-append; the next writable open cuts it, as
 * `suiro verify`'s 3), 4 unreadable (not a data
 * directory, no certificate, neither index nor notes to check against),
 * 2 usage.
 *
 * INVARIANTS
 *  (1) Nothing is written: the log is opened read-only, the engine
 *      read-only, the notes file read.
 *  (2) A checkpoint passes only if its signature, root, tip and last seq all
 *      hold against what was recomputed here from the log's bytes; nothing
 *      the index says about the tree is trusted but to narrow a failure.
 */
#include "api/cli/cli.h"
#include "codecs/rfc3339.h"
#include "engine/records.h"
#include "engine/suiro.h"
#include "storage/crypto.h"
#include "storage/keyring.h"
#include "storage/log.h"
#include "storage/mtree.h"

#include <jansson.h>
#include <openssl/crypto.h>

#include <inttypes.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct aopts {
    const char *keyfile, *cert, *ckfile;
    int json;
} aopts;

const sr_opt sr_opts_audit_verify[] = {
    SR_OPT_STR("key-file", 0, "FILE", aopts, keyfile,
               "the log's key, if it is encrypted: FILE, env:VAR or cmd:COMMAND (not needed: the tree needs no key)"),
    SR_OPT_STR("cert", 0, "FILE", aopts, cert,
               "the platform certificate the auditor trusts (default: DIR/platform-cert.pem)"),
    SR_OPT_STR("checkpoints", 0, "FILE", aopts, ckfile,
               "signed notes kept by the auditor (GET /admin/v1/audit/checkpoints/latest's note), one after another"),
    SR_OPT_FLAG("json", 0, aopts, json, "the verdict as one JSON object"),
    SR_OPT_END,
};

/* a leaf recomputed from the log */
typedef struct aleaf {
    uint64_t first_seq;
    uint32_t count;
    uint8_t hash[SR_MT_HASH_LEN], tip[SR_MT_HASH_LEN];
} aleaf;

/* a checkpoint to check */
typedef struct ack {
    char source[PATH_MAX + 32]; /* "log record N (index)" or "FILE note #i" */
    uint64_t record;            /* its CheckpointEvent's seq (0: a note of the file) */
    char *note;
    /* parsed from the signed note */
    char origin[128];
    uint64_t size, last_seq;
    int64_t time_ms;
    uint8_t root[SR_MT_HASH_LEN], tip[SR_MT_HASH_LEN];
    /* findings */
    int sig_ok, parsed, fields_ok, have_root;
    uint8_t got_root[SR_MT_HASH_LEN];
} ack;

typedef struct audit {
    const char *dir;
    char logdir[PATH_MAX];
    aleaf *lv;
    size_t n, cap;
    uint64_t base; /* leaf index of lv[0] (a trimmed log: the LogTrim's tree size) */
    ack *ck;
    size_t nck, capck;
    sr_engine *e;
} audit;

static int add_ck(audit *a, ack **out)
{
    if (a->nck == a->capck) {
        size_t c = a->capck ? a->capck * 2 : 16;
        ack *p = realloc(a->ck, c * sizeof *p);
        if (!p) return SR_ENOMEM;
        a->ck = p;
        a->capck = c;
    }
    *out = &a->ck[a->nck++];
    memset(*out, 0, sizeof **out);
    return SR_OK;
}

/* the note's body fields (storage/mtree.h sr_tlog_parse) */
static int parse_note(ack *c)
{
    sr_tlog_fields t;
    if (sr_tlog_parse(c->note, strlen(c->note), &t)) return SR_ECORRUPT;
    snprintf(c->origin, sizeof c->origin, "%s", t.origin);
    c->size = t.size;
    c->last_seq = t.last_seq;
    c->time_ms = t.time_ms;
    memcpy(c->root, t.root, SR_MT_HASH_LEN);
    memcpy(c->tip, t.tip, SR_MT_HASH_LEN);
    c->parsed = 1;
    return SR_OK;
}

static int from_index(void *ctx, const sr_checkpoint *k)
{
    audit *a = ctx;
    ack *c;
    int rc = add_ck(a, &c);
    if (rc) return rc;
    snprintf(c->source, sizeof c->source, "log record %" PRIu64 " (the index's copy)", k->seq);
    c->record = k->seq;
    if (!(c->note = strdup(k->note))) return SR_ENOMEM;
    /* the event's fields must be the note's: the note is what is signed */
    c->fields_ok = !parse_note(c) && c->size == k->tree_size && c->last_seq == k->last_seq &&
                   c->time_ms == k->time_ms && !memcmp(c->root, k->root, SR_MT_HASH_LEN) &&
                   !memcmp(c->tip, k->tip, SR_MT_HASH_LEN);
    return SR_OK;
}

/* notes one after another: a note ends with its signature lines (after the
 * blank line, each starting with U+2014); the next starts after them */
static int from_file(audit *a, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) return snprintf(err, errlen, "--checkpoints %s: cannot open it", path), SR_ENOTFOUND;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    char line[4096];
    int in_sig = 0, rc = SR_OK, nth = 0;
    for (;;) {
        int eof = !fgets(line, sizeof line, f);
        int sig = !eof && !strncmp(line, "\xe2\x80\x94 ", 4);
        if ((eof || (in_sig && !sig)) && len) { /* a note ends */
            ack *c;
            if ((rc = add_ck(a, &c))) break;
            snprintf(c->source, sizeof c->source, "%s note #%d", path, ++nth);
            c->note = buf;
            c->fields_ok = 1;
            (void)parse_note(c);
            buf = NULL;
            len = cap = 0;
            in_sig = 0;
        }
        if (eof) break;
        if (!len && line[0] == '\n') continue; /* blank lines between notes */
        in_sig = sig;
        size_t l = strlen(line);
        if (len + l + 1 > cap) {
            cap = (len + l + 1) * 2;
            char *p = realloc(buf, cap);
            if (!p) {
                rc = SR_ENOMEM;
                break;
            }
            buf = p;
        }
        memcpy(buf + len, line, l + 1);
        len += l;
    }
    free(buf);
    fclose(f);
    if (!rc && !nth) return snprintf(err, errlen, "--checkpoints %s: no signed note in it", path), SR_EINVAL;
    return rc;
}

static int cmp_ck(const void *x, const void *y)
{
    const ack *a = x, *b = y;
    if (a->size != b->size) return a->size < b->size ? -1 : 1;
    return a->time_ms < b->time_ms ? -1 : a->time_ms > b->time_ms;
}

/* the leaves from the log; *lerr and lei: the first block that could not be read */
static int read_leaves(audit *a, const sr_log_opts *lo, sr_mt_frontier *f, int *lerr, sr_errinfo *lei)
{
    sr_log_opts o = *lo;
    o.readonly = 1;
    sr_log *lg;
    int rc = sr_log_open(a->logdir, &o, &lg, lei);
    if (rc) {
        *lerr = rc;
        return SR_OK;
    }
    sr_log_iter *it;
    if ((rc = sr_log_iter_open(lg, 0, &it))) {
        sr_log_close(lg);
        *lerr = rc;
        return SR_OK;
    }
    /* the checkpoints by size: the root of each size is taken as the push reaches it */
    size_t next = 0;
    while (next < a->nck && a->ck[next].size < f->size) next++;
    for (;;) {
        while (next < a->nck && a->ck[next].size == f->size) {
            sr_mt_frontier_root(f, a->ck[next].got_root);
            a->ck[next++].have_root = 1;
        }
        sr_log_leaf l;
        rc = sr_log_leaf_next(it, &l);
        if (rc == SR_DONE) {
            rc = SR_OK;
            break;
        }
        if (rc) {
            *lerr = rc;
            *lei = *sr_log_iter_errinfo(it);
            rc = SR_OK;
            break;
        }
        if (a->n == a->cap) {
            size_t c = a->cap ? a->cap * 2 : 1024;
            aleaf *p = realloc(a->lv, c * sizeof *p);
            if (!p) {
                rc = SR_ENOMEM;
                break;
            }
            a->lv = p;
            a->cap = c;
        }
        aleaf *x = &a->lv[a->n++];
        x->first_seq = l.first_seq;
        x->count = l.count;
        memcpy(x->hash, l.hash, SR_MT_HASH_LEN);
        memcpy(x->tip, l.tip, SR_MT_HASH_LEN);
        if ((rc = sr_mt_frontier_push(f, l.hash, NULL, NULL))) break;
    }
    sr_log_iter_close(it);
    sr_log_close(lg);
    return rc;
}

/* the segment file holding seq and the offset of its block (format.md:
 * blocks back to back from offset 64, 96-byte headers, stored_len at 24,
 * first seq at 8, count at 16) */
static void locate(const audit *a, uint64_t seq, char seg[72], uint64_t *off)
{
    seg[0] = 0;
    *off = 0;
    sr_log *lg;
    sr_log_opts o = {.readonly = 1};
    sr_errinfo ei;
    if (sr_log_open(a->logdir, &o, &lg, &ei)) return;
    char name[64], best[64] = "";
    uint64_t first, bytes;
    for (size_t i = 0; !sr_log_segment_at(lg, i, name, &first, &bytes); i++)
        if (first <= seq) snprintf(best, sizeof best, "%s", name);
    sr_log_close(lg);
    if (!best[0]) return;
    snprintf(seg, 72, "%s", best);
    char path[PATH_MAX + 80];
    snprintf(path, sizeof path, "%s/%s", a->logdir, best);
    FILE *f = fopen(path, "rb");
    if (!f) return;
    uint8_t h[96];
    uint64_t at = 64;
    while (!fseek(f, (long)at, SEEK_SET) && fread(h, 1, 96, f) == 96) {
        uint64_t s = sr_get_le64(h + 8);
        uint32_t c = sr_get_le32(h + 16);
        if (seq >= s && seq < s + c) {
            *off = at;
            break;
        }
        at += 96 + sr_get_le32(h + 24);
    }
    fclose(f);
}

static int cmp_name(const void *x, const void *y) { return strcmp(x, y); }

/* the block at (segment, offset) by walking the segments' headers (the log
 * may not open when a block is damaged): its leaf index, first seq and
 * count; 0 if found */
static int block_at(const audit *a, const char *segment, uint64_t offset, uint64_t *leaf, uint64_t *first,
                    uint32_t *count)
{
    DIR *dh = opendir(a->logdir);
    if (!dh) return -1;
    char (*names)[64] = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(dh))) {
        size_t l = strlen(de->d_name);
        if (l < 5 || l >= 64 || strcmp(de->d_name + l - 4, ".seg")) continue;
        char (*p)[64] = realloc(names, (n + 1) * sizeof *names);
        if (!p) break;
        names = p;
        snprintf(names[n++], 64, "%s", de->d_name);
    }
    closedir(dh);
    if (n) qsort(names, n, sizeof *names, cmp_name);
    uint64_t idx = a->base;
    int found = -1;
    for (size_t i = 0; i < n && found; i++) {
        char path[PATH_MAX + 80];
        snprintf(path, sizeof path, "%s/%s", a->logdir, names[i]);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        uint8_t h[96];
        uint64_t at = 64;
        while (!fseek(f, (long)at, SEEK_SET) && fread(h, 1, 96, f) == 96 && sr_get_le32(h) == 0x4B425253) {
            if (!strcmp(names[i], segment) && at == offset) {
                *leaf = idx, *first = sr_get_le64(h + 8), *count = sr_get_le32(h + 16);
                found = 0;
                break;
            }
            idx++;
            at += 96 + sr_get_le32(h + 24);
        }
        fclose(f);
    }
    free(names);
    return found;
}

/* the first leaf in [from, to) whose index row differs from the recomputed one */
typedef struct diffctx {
    const audit *a;
    uint64_t to, found;
    int have;
} diffctx;

static int diff_leaf(void *ctx, const sr_tree_leaf *l)
{
    diffctx *d = ctx;
    if (l->index >= d->to) return SR_DONE;
    if (l->index < d->a->base || l->index - d->a->base >= d->a->n) return SR_OK;
    const aleaf *x = &d->a->lv[l->index - d->a->base];
    if (memcmp(x->hash, l->hash, SR_MT_HASH_LEN) || x->first_seq != l->first_seq || x->count != l->count) {
        d->found = l->index;
        d->have = 1;
        return SR_DONE;
    }
    return SR_OK;
}

typedef struct finding {
    int broken;
    char why[512];
    uint64_t seq, first_seq, leaf;
    uint32_t count;
    int have_leaf, have_seq;
    char segment[72];
    uint64_t offset;
    const ack *by; /* the checkpoint that disproves it */
} finding;

static void leaf_finding(const audit *a, finding *fd, uint64_t leaf)
{
    fd->have_leaf = 1;
    fd->leaf = leaf;
    if (leaf >= a->base && leaf - a->base < a->n) {
        const aleaf *x = &a->lv[leaf - a->base];
        fd->first_seq = x->first_seq;
        fd->count = x->count;
        fd->seq = x->first_seq;
        fd->have_seq = 1;
        locate(a, fd->seq, fd->segment, &fd->offset);
    }
}

static void note_head(const char *note, char *out, size_t cap)
{
    /* its first three lines: origin, size, root */
    const char *p = note;
    for (int i = 0; i < 3 && p; i++) p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL;
    size_t n = p ? (size_t)(p - note) : strlen(note);
    if (n >= cap) n = cap - 1;
    memcpy(out, note, n);
    out[n] = 0;
}

int sr_cmd_audit_verify(const sr_command *cmd, int argc, char **argv)
{
    aopts o = {0};
    sr_args args;
    int rc = sr_opts_parse(cmd, argc, argv, &o, &args);
    if (rc) return rc == SR_OPTS_HELP ? 0 : rc;
    audit a = {.dir = args.pos[0]};
    if (sr_cli_data_dir("audit verify", a.dir)) return 4;
    snprintf(a.logdir, sizeof a.logdir, "%s/log", a.dir);
    sr_key key;
    int has_key = 0;
    char err[512] = "";
    if (o.keyfile) {
        if (sr_key_load(o.keyfile, &key, err, sizeof err)) {
            fprintf(stderr, "suiro audit verify: %s\n", err);
            return 2;
        }
        has_key = 1;
    }
    char certpath[PATH_MAX];
    snprintf(certpath, sizeof certpath, "%s", o.cert ? o.cert : "");
    if (!o.cert) snprintf(certpath, sizeof certpath, "%s/platform-cert.pem", a.dir);
    sr_sigkey *cert = NULL;
    if (sr_sigkey_load(certpath, 0, &cert, err, sizeof err)) {
        fprintf(stderr, "unreadable: the platform certificate %s: %s (give the one you trust with --cert FILE)\n",
                certpath, err);
        return 4;
    }

    /* 1. the chain */
    sr_log_opts lo = {0};
    lo.key = has_key ? &key : NULL;
    sr_keyring *kr = sr_cli_keyring(a.logdir, lo.key, &lo);
    sr_log_report rep;
    sr_errinfo cei;
    memset(&rep, 0, sizeof rep);
    memset(&cei, 0, sizeof cei);
    int chain_rc = sr_log_verify(a.logdir, &lo, &rep, &cei);
    /* a torn tail only (a crash mid-append; the next writable open cuts it)
     * is not a broken record: the leaves stop before it, and a checkpoint
     * past it is a cut tail */
    const char *verdict;
    int torn = chain_rc && sr_cli_log_verdict(chain_rc, &rep, &verdict) == 3;
    if (torn) chain_rc = SR_OK;

    /* 3 (first: the sizes steer the push). The checkpoints: the index's and the file's */
    sr_errinfo eei;
    memset(&eei, 0, sizeof eei);
    sr_engine_opts eo = {.key = lo.key, .readonly = 1};
    int erc = sr_engine_open(a.dir, &eo, &a.e, &eei);
    int index_ck = 0;
    uint8_t (*base_h)[SR_TREE_HASH] = calloc(SR_MT_MAX_LEVEL, SR_TREE_HASH);
    rc = base_h ? SR_OK : SR_ENOMEM;
    if (!rc && !erc) {
        rc = sr_read_checkpoints(a.e, from_index, &a);
        index_ck = (int)a.nck;
        if (!rc && sr_read_tree_base(a.e, &a.base, base_h)) a.base = 0;
    }
    if (!rc && o.ckfile && (rc = from_file(&a, o.ckfile, err, sizeof err))) {
        fprintf(stderr, "suiro audit verify: %s\n", err);
        rc = 2;
        goto out;
    }
    if (rc) goto fail;
    for (size_t i = 0; i < a.nck; i++)
        if (a.ck[i].parsed) {
            size_t bl;
            a.ck[i].sig_ok = sr_tlog_verify(cert, a.ck[i].origin, a.ck[i].note, &bl) == SR_OK;
        }
    if (a.nck) qsort(a.ck, a.nck, sizeof *a.ck, cmp_ck); /* no checkpoint yet: a.ck NULL */

    /* 2. the tree from the log's blocks, from the trim's frontier */
    sr_mt_frontier *f = calloc(1, sizeof *f);
    if (!f) {
        rc = SR_ENOMEM;
        goto fail;
    }
    f->size = a.base;
    memcpy(f->h, base_h, SR_MT_MAX_LEVEL * SR_TREE_HASH);
    int lerr = 0;
    sr_errinfo lei;
    memset(&lei, 0, sizeof lei);
    rc = read_leaves(&a, &lo, f, &lerr, &lei);
    uint8_t now_root[SR_MT_HASH_LEN];
    sr_mt_frontier_root(f, now_root);
    free(f);
    if (rc) goto fail;
    if (a.n && a.lv[0].first_seq != 1 && !a.base) {
        fprintf(stderr, "unreadable: the log starts at seq %" PRIu64 " (trimmed) and the index that keeps the "
                        "frontier of the dropped blocks cannot be read%s%s: the tree cannot be recomputed\n",
                a.lv[0].first_seq, erc ? ": " : "", erc ? (eei.msg[0] ? eei.msg : sr_strerror(erc)) : "");
        rc = 4;
        goto out;
    }

    /* 4. the verdict: the smallest tree a failure concerns */
    finding fd = {0};
    uint64_t leaves = a.base + a.n, good = a.base;
    size_t checked = 0, old = 0;
    if (chain_rc || lerr) {
        /* a block the chain or the leaf reader refused: the first broken record */
        const sr_errinfo *w = chain_rc ? &cei : &lei;
        fd.broken = 1;
        fd.seq = chain_rc ? rep.block_seq : 0;
        fd.have_seq = chain_rc && rep.block_seq;
        snprintf(fd.segment, sizeof fd.segment, "%s", chain_rc ? rep.segment : lei.segment);
        fd.offset = chain_rc ? rep.offset : lei.offset;
        if (!fd.segment[0]) snprintf(fd.segment, sizeof fd.segment, "%s", w->segment);
        if (!fd.offset) fd.offset = w->offset;
        snprintf(fd.why, sizeof fd.why, "the log: %s", w->msg[0] ? w->msg : sr_strerror(chain_rc ? chain_rc : lerr));
        fd.have_leaf = 1;
        fd.leaf = leaves; /* the leaf the log could not give */
        uint64_t bf;
        uint32_t bc;
        if (!block_at(&a, fd.segment, fd.offset, &fd.leaf, &bf, &bc)) {
            fd.first_seq = bf, fd.count = bc;
            if (!fd.have_seq) fd.seq = bf, fd.have_seq = 1;
        }
        for (size_t i = 0; i < a.nck && !fd.by; i++)
            if (a.ck[i].size > fd.leaf) fd.by = &a.ck[i];
    }
    for (size_t i = 0; i < a.nck && !fd.broken; i++) {
        ack *c = &a.ck[i];
        if (!c->parsed) {
            fd.broken = 1, fd.by = c;
            snprintf(fd.why, sizeof fd.why, "the checkpoint is not a suiro signed note");
        } else if (!c->sig_ok) {
            fd.broken = 1, fd.by = c;
            if (c->record) fd.seq = c->record, fd.have_seq = 1, locate(&a, c->record, fd.segment, &fd.offset);
            snprintf(fd.why, sizeof fd.why, "the checkpoint's signature does not verify with %.200s (signed by another key, "
                                            "or its note was changed)", certpath);
        } else if (!c->fields_ok) {
            fd.broken = 1, fd.by = c;
            fd.seq = c->record, fd.have_seq = 1, locate(&a, c->record, fd.segment, &fd.offset);
            snprintf(fd.why, sizeof fd.why, "the CheckpointEvent's fields are not its signed note's");
        } else if (c->size < a.base) {
            old++; /* its tree's nodes went with the trimmed segments: its signature only */
        } else if (c->size > leaves) {
            fd.broken = 1, fd.by = c;
            uint64_t end = a.n ? a.lv[a.n - 1].first_seq + a.lv[a.n - 1].count : 0;
            fd.seq = end, fd.have_seq = 1;
            fd.have_leaf = 1, fd.leaf = leaves;
            locate(&a, end ? end - 1 : 0, fd.segment, &fd.offset); /* the last block there is */
            snprintf(fd.why, sizeof fd.why,
                     "the log ends after %" PRIu64 " blocks (seq %" PRIu64 ", the block at that offset) but the "
                     "checkpoint covers %" PRIu64 " blocks up to seq %" PRIu64 ": records %" PRIu64 "..%" PRIu64
                     " are missing (a cut tail)",
                     leaves, end ? end - 1 : 0, c->size, c->last_seq, end, c->last_seq);
        } else if (!c->have_root || memcmp(c->got_root, c->root, SR_MT_HASH_LEN)) {
            fd.broken = 1, fd.by = c;
            diffctx d = {&a, c->size, 0, 0};
            if (a.e && !sr_read_tree_leaves(a.e, good, diff_leaf, &d) && d.have) {
                leaf_finding(&a, &fd, d.found);
                snprintf(fd.why, sizeof fd.why,
                         "its block is not the one the tree had when it was written (the index's leaf %" PRIu64
                         " differs): the tree of %" PRIu64 " blocks recomputed from the log has another root than "
                         "the checkpoint's",
                         d.found, c->size);
            } else {
                leaf_finding(&a, &fd, good);
                snprintf(fd.why, sizeof fd.why,
                         "a block among leaves %" PRIu64 "..%" PRIu64 " (from this record on) is not the one signed: "
                         "the tree of %" PRIu64 " blocks recomputed from the log has another root than the checkpoint's",
                         good, c->size - 1, c->size);
            }
        } else {
            /* (a checkpoint of exactly the trim's size: its last block was dropped, its root is the frontier's) */
            const aleaf *x = c->size > a.base ? &a.lv[c->size - 1 - a.base] : NULL;
            if (x && (memcmp(x->tip, c->tip, SR_MT_HASH_LEN) || x->first_seq + x->count - 1 != c->last_seq)) {
                fd.broken = 1, fd.by = c;
                leaf_finding(&a, &fd, c->size - 1);
                snprintf(fd.why, sizeof fd.why,
                         "the checkpoint's chain tip or last seq (%" PRIu64 ") is not its last block's (%" PRIu64 ")",
                         c->last_seq, x->first_seq + x->count - 1);
            } else {
                checked++;
                good = c->size;
            }
        }
    }

    /* the report */
    const ack *last = NULL;
    for (size_t i = 0; i < a.nck; i++)
        if (a.ck[i].sig_ok && (!last || a.ck[i].size >= last->size)) last = &a.ck[i];
    uint64_t first = a.n ? a.lv[0].first_seq : 0, lastseq = a.n ? a.lv[a.n - 1].first_seq + a.lv[a.n - 1].count - 1 : 0;
    char ts[32] = "", head[400] = "";
    if (fd.by) {
        sr_rfc3339_format(fd.by->time_ms, ts);
        note_head(fd.by->note, head, sizeof head);
    }
    if (o.json) {
        json_t *j = json_object();
        json_object_set_new(j, "verdict", json_string(fd.broken ? "broken" : torn ? "torn-tail" : "ok"));
        json_object_set_new(j, "checkpoints", json_integer((json_int_t)a.nck));
        json_object_set_new(j, "checkpoints_index", json_integer(index_ck));
        json_object_set_new(j, "checkpoints_checked", json_integer((json_int_t)checked));
        json_object_set_new(j, "checkpoints_before_trim", json_integer((json_int_t)old));
        json_object_set_new(j, "leaves", json_integer((json_int_t)leaves));
        json_object_set_new(j, "base", json_integer((json_int_t)a.base));
        json_object_set_new(j, "first_seq", json_integer((json_int_t)first));
        json_object_set_new(j, "last_seq", json_integer((json_int_t)lastseq));
        char hx[65];
        sr_hex(now_root, SR_MT_HASH_LEN, hx);
        json_object_set_new(j, "root", json_string(hx));
        if (erc) json_object_set_new(j, "index_error", json_string(eei.msg[0] ? eei.msg : sr_strerror(erc)));
        if (last && !fd.broken) {
            json_t *l = json_object();
            json_object_set_new(l, "tree_size", json_integer((json_int_t)last->size));
            json_object_set_new(l, "last_seq", json_integer((json_int_t)last->last_seq));
            json_object_set_new(l, "time_ms", json_integer(last->time_ms));
            json_object_set_new(j, "last_checkpoint", l);
        }
        if (fd.broken) {
            json_t *b = json_object();
            if (fd.have_seq) json_object_set_new(b, "seq", json_integer((json_int_t)fd.seq));
            if (fd.count) {
                json_object_set_new(b, "block_first_seq", json_integer((json_int_t)fd.first_seq));
                json_object_set_new(b, "block_count", json_integer(fd.count));
            }
            if (fd.have_leaf) json_object_set_new(b, "leaf", json_integer((json_int_t)fd.leaf));
            if (fd.segment[0]) json_object_set_new(b, "segment", json_string(fd.segment));
            if (fd.segment[0]) json_object_set_new(b, "offset", json_integer((json_int_t)fd.offset));
            json_object_set_new(b, "why", json_string(fd.why));
            json_object_set_new(j, "broken", b);
            if (fd.by) {
                json_t *c = json_object();
                json_object_set_new(c, "tree_size", json_integer((json_int_t)fd.by->size));
                json_object_set_new(c, "last_seq", json_integer((json_int_t)fd.by->last_seq));
                json_object_set_new(c, "time_ms", json_integer(fd.by->time_ms));
                json_object_set_new(c, "time", json_string(ts));
                json_object_set_new(c, "source", json_string(fd.by->source));
                json_object_set_new(c, "note", json_string(fd.by->note));
                json_object_set_new(j, "checkpoint", c);
            }
        }
        char *s = json_dumps(j, JSON_COMPACT);
        if (s) printf("%s\n", s);
        free(s);
        json_decref(j);
    }
    if (fd.broken) {
        fprintf(stderr, "broken: ");
        if (fd.have_seq) fprintf(stderr, "record %" PRIu64, fd.seq);
        else fprintf(stderr, "a record");
        if (fd.count) fprintf(stderr, " (block of seq %" PRIu64 "..%" PRIu64 ")", fd.first_seq, fd.first_seq + fd.count - 1);
        if (fd.have_leaf) fprintf(stderr, ", leaf %" PRIu64, fd.leaf);
        if (fd.segment[0]) fprintf(stderr, ", segment %s offset %" PRIu64, fd.segment, fd.offset);
        fprintf(stderr, ": %s\n", fd.why);
        if (fd.by)
            fprintf(stderr, "disproved by the checkpoint of tree size %" PRIu64 " (last seq %" PRIu64 "), signed %s, %s:\n%s",
                    fd.by->size, fd.by->last_seq, ts, fd.by->source, head);
        else
            fprintf(stderr, "no checkpoint covers it (the chain alone refuses it)\n");
        rc = 1;
    } else if (!a.nck && erc) {
        fprintf(stderr, "unreadable: the index: %s; and no --checkpoints FILE: nothing to check the log against\n",
                eei.msg[0] ? eei.msg : sr_strerror(erc));
        rc = 4;
    } else {
        if (!o.json) {
            printf("ok: %zu checkpoint%s checked (%d from the index%s%s), %" PRIu64 " leaves (seq %" PRIu64
                   "..%" PRIu64 ")",
                   checked, checked == 1 ? "" : "s", index_ck, o.ckfile ? ", the rest from " : "",
                   o.ckfile ? o.ckfile : "", leaves, first, lastseq);
            if (last) {
                sr_rfc3339_format(last->time_ms, ts);
                printf(", last checkpoint: tree size %" PRIu64 " (seq %" PRIu64 ") signed %s", last->size,
                       last->last_seq, ts);
            }
            printf("\n");
            if (a.base)
                printf("trimmed log: the tree goes on from the frontier of the %" PRIu64
                       " blocks a LogTrim dropped; %zu checkpoint%s older than the trim: signature checked, their "
                       "trees' nodes went with the segments\n",
                       a.base, old, old == 1 ? "" : "s");
            if (!a.nck) printf("note: no checkpoint yet: the chain alone was checked\n");
            if (erc)
                printf("note: the index could not be read (%s): only the notes of %s were checked\n",
                       eei.msg[0] ? eei.msg : sr_strerror(erc), o.ckfile);
        }
        if (torn && !o.json) printf("torn tail: %s (the next writable open cuts it)\n", cei.msg);
        rc = torn ? 3 : 0;
    }
    goto out;
fail:
    fprintf(stderr, "unreadable: %s\n", sr_strerror(rc));
    rc = 4;
out:
    for (size_t i = 0; i < a.nck; i++) free(a.ck[i].note);
    free(a.ck);
    free(a.lv);
    free(base_h);
    if (a.e) sr_engine_close(a.e);
    sr_keyring_close(kr);
    sr_sigkey_free(cert);
    if (has_key) OPENSSL_cleanse(&key, sizeof key);
    return rc;
}
