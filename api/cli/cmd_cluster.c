/*
 * api/cli/cmd_cluster.c -- `suiro cluster dump` and `suiro cluster verify`:
 * replay and verify per partition from the JetStream streams (issue #19,
 * docs/cluster.md "Replay, verify and audit from the stream").
 *
 * Both read the [cluster] keys (nats, name, partitions) of --config FILE and
 * block on NATS (a tool, not the server's loop: api/cluster_read.c).
 *
 * dump prints each message of a partition (all of them without
 * --partition) from stream sequence --from on as one JSON line: the line of
 * natsdump, from the one printer (sr_stream_msg_json).
 *
 * verify checks, per partition:
 *  (a) the stream is sound: every payload decodes as an Event; its headers
 *      agree with it (Suiro-Seq = the event's seq, Nats-Msg-Id = node:seq,
 *      Suiro-Operator = its operator or "-", Suiro-Kind = its body, the
 *      stream = sr_cluster_partition(operator)); per node the seqs grow.
 *      The same Nats-Msg-Id twice is a duplicate (the outbox horizon,
 *      docs/cluster.md), counted and reported as such, not as corruption.
 *  (b) it matches the index: per data point of the partition's operators,
 *      the count of distinct (time, value) of its measurements in the stream
 *      and the sum of sr_value_hash over them (engine/digest.c) equal the
 *      digest of the partition's owner's index: read with GET
 *      /admin/v1/cluster/partitions/{p}/digest from whichever of --url's
 *      servers owns it now (GET /admin/v1/cluster), or computed from a data
 *      directory (--data DIR, opened read-only). A measurement's point
 *      number is its node's: mapped to a data id by that node's MasterPut in
 *      the stream, else by any MasterPut of the operator with that number
 *      (points seeded alike on every node). Corrections and retention
 *      removals change an index's values without a measurement: a partition
 *      with them reports their points as differences (not covered yet).
 * One line per finding, naming the partition, the point (operator/data id)
 * and both counts; a summary line per partition.
 *
 * audit prints the audit rows of one operator (--operator) read from its
 * partition's stream, in stream order, one JSON object a line with the
 * columns of GET /admin/v1/audit/events (the one formatter,
 * sr_audit_item_json; the summary of sr_event_audit) and the node that
 * wrote the event; --from/--to bound the events' ingest time. A duplicate
 * (the same Msg-Id again) is one row.
 *
 * keys lists the stream keys of the bucket <name>_KEYS (docs/keys.md
 * "Cluster: stream keys"), one JSON line each, metadata only (id, operator,
 * class, epoch, its time range, state, times): no key is unwrapped.
 * erase destroys one (--id): its tombstone replaces the entry, so no payload
 * it sealed opens any more anywhere (the running nodes read it again within
 * SR_SKEYS_TTL_MS); it needs [engine] key_file (the same master as the
 * nodes'). A config key is refused (as the keyring's: never erased). The
 * erasure is recorded in the --config node's log (StreamKeyErase events,
 * issue #19 ckey: the intent before the tombstone, then the result; a
 * refusal too) as the other offline commands do: with the node stopped,
 * its engine is opened here (actor $USER, source "cli"); while it runs
 * (its log locked), through its Admin API (`suiro admin cluster-key-erase`,
 * --url/--token or SUIRO_URL/SUIRO_TOKEN), else the command to run is
 * printed and nothing is erased (exit 1).
 *
 * EXIT CODES (as `suiro audit verify`): 0 sound and equal; 1 broken (a
 * finding); 2 usage; 3 NATS or a server unreachable, a stream missing, no
 * owner found; 4 the data directory unreadable.
 */
#include "api/admin_http.h"
#include "api/cli/cli.h"
#include "api/cluster.h"
#include "api/cluster_seal.h"
#include "api/config.h"
#include "codecs/base/sr_alloc.h"
#include "codecs/rfc3339.h"
#include "engine/records.h"
#include "storage/crypto.h"
#include "storage/keyring.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { EX_OK = 0, EX_BROKEN = 1, EX_USAGE = 2, EX_CONN = 3, EX_UNREADABLE = 4 };

typedef struct copts {
    const char *config, *partition, *from, *data, *url, *token, *keyfile, *op, *to, *id;
} copts;

#define CONFIG SR_OPT_STR("config", 0, "FILE", copts, config, "the [cluster] keys (nats, name, partitions) (required)")
#define PART SR_OPT_STR("partition", 0, "N", copts, partition, "this partition only [all]")
const sr_opt sr_opts_cluster_dump[] = {
    CONFIG,
    PART,
    SR_OPT_STR("from", 0, "SEQ", copts, from, "the first stream sequence [1]"),
    SR_OPT_END,
};
const sr_opt sr_opts_cluster_verify[] = {
    CONFIG,
    PART,
    SR_OPT_STR("url", 0, "URL[,URL]", copts, url, "the nodes' Admin API roots: the owner's index digest"),
    SR_OPT_STR("token", 0, "T", copts, token, "an admin session token valid on them (env SUIRO_TOKEN)"),
    SR_OPT_STR("data", 0, "DIR", copts, data, "a node's data directory instead (read-only)"),
    SR_OPT_STR("key-file", 0, "FILE", copts, keyfile, "--data's key, if its log is encrypted"),
    SR_OPT_END,
};

const sr_opt sr_opts_cluster_keys[] = {
    CONFIG,
    SR_OPT_END,
};
const sr_opt sr_opts_cluster_erase[] = {
    CONFIG,
    SR_OPT_STR("id", 0, "KEYID", copts, id, "the stream key to destroy: 16 hex digits, as `cluster keys` lists (required)"),
    SR_OPT_STR("data", 0, "DIR", copts, data, "the node's data directory, whose log records the erasure [its data_dir]"),
    SR_OPT_STR("url", 0, "URL", copts, url, "the running node's Admin API root (its log records the erasure)"),
    SR_OPT_STR("token", 0, "T", copts, token, "an admin session token valid on it (env SUIRO_TOKEN)"),
    SR_OPT_END,
};

const sr_opt sr_opts_cluster_audit[] = {
    CONFIG,
    SR_OPT_STR("operator", 0, "OP", copts, op, "the operator (required): its partition's stream"),
    SR_OPT_STR("from", 0, "TIME", copts, from, "rows at or after TIME (the event's ingest time) [all]"),
    SR_OPT_STR("to", 0, "TIME", copts, to, "rows before TIME [all]"),
    SR_OPT_END,
};

typedef struct setup {
    sr_config cfg;
    uint32_t first, last; /* the partitions asked for */
    sr_stream_reader *r;
} setup;

static int get_setup(const sr_command *cmd, const copts *o, setup *s)
{
    char err[512];
    if (!o->config) return sr_opts_error(cmd, "--config FILE is required (its [cluster] nats, name, partitions)");
    sr_config_defaults(&s->cfg);
    if (sr_config_load(&s->cfg, o->config, err, sizeof err)) {
        fprintf(stderr, "suiro %s: %s\n", cmd->name, err);
        return EX_USAGE;
    }
    if (!s->cfg.cluster_nats[0]) {
        fprintf(stderr, "suiro %s: %s has no [cluster] nats: not a cluster node's configuration\n", cmd->name,
                o->config);
        return EX_USAGE;
    }
    s->first = 0;
    s->last = s->cfg.cluster_partitions - 1;
    if (o->partition) {
        unsigned long long p;
        if (sr_cli_parse_u64(o->partition, &p) || p >= s->cfg.cluster_partitions)
            return sr_opts_error(cmd, "--partition wants 0..%u, not '%s'", s->cfg.cluster_partitions - 1,
                                 o->partition);
        s->first = s->last = (uint32_t)p;
    }
    if (sr_stream_reader_open(s->cfg.cluster_nats, s->cfg.cluster_name, &s->r, err, sizeof err)) {
        fprintf(stderr, "suiro %s: %s\n", cmd->name, err);
        return EX_CONN;
    }
    if (s->cfg.key_file[0]) { /* sealed streams (docs/keys.md "Cluster: stream keys"): opened with the master key */
        sr_key mk;
        int rc = sr_key_load(s->cfg.key_file, &mk, err, sizeof err);
        if (!rc) rc = sr_stream_reader_set_master(s->r, &mk, s->cfg.key_rotate_days);
        memset(&mk, 0, sizeof mk);
        if (rc) {
            fprintf(stderr, "suiro %s: %s\n", cmd->name, rc == SR_EKEY ? err : sr_strerror(rc));
            sr_stream_reader_close(s->r);
            return EX_USAGE;
        }
    }
    return EX_OK;
}

/* ---- dump ---- */

static int print_msg(void *ctx, const sr_stream_msg *m)
{
    sr_buf *line = ctx;
    line->len = 0;
    int rc = sr_stream_msg_json(m, line);
    if (!rc && (fwrite(line->data, 1, line->len, stdout) != line->len || putchar('\n') == EOF)) rc = SR_EIO;
    return rc;
}

int sr_cmd_cluster_dump(const sr_command *cmd, int argc, char **argv)
{
    copts o = {0};
    sr_args a;
    int rc = sr_opts_parse(cmd, argc, argv, &o, &a);
    if (rc) return rc == SR_OPTS_HELP ? 0 : rc;
    unsigned long long from = 0;
    if (o.from && sr_cli_parse_u64(o.from, &from)) return sr_opts_error(cmd, "--from wants a sequence, not '%s'", o.from);
    setup s;
    if ((rc = get_setup(cmd, &o, &s))) return rc;
    sr_buf line;
    sr_buf_init(&line);
    char err[512];
    for (uint32_t p = s.first; p <= s.last && !rc; p++)
        if ((rc = sr_stream_each(s.r, p, from, print_msg, &line, err, sizeof err)))
            fprintf(stderr, "suiro %s: %s\n", cmd->name, rc == SR_EIO && !err[0] ? "cannot write" : err);
    sr_buf_release(&line);
    sr_stream_reader_close(s.r);
    return rc ? EX_CONN : EX_OK;
}

/* ---- verify: the stream's side ---- */

typedef struct pkey { /* a data point of the stream: (operator, data id) */
    char *op, *id;
} pkey;
typedef struct pmap { /* a MasterPut of the stream: (node, number) -> pkey */
    char *node, *op;
    uint32_t point;
    size_t key;
} pmap;
typedef struct vrow { /* one value: its point and hash */
    size_t key;
    uint64_t h;
} vrow;
typedef struct nodeseq {
    char *node;
    uint64_t last;
} nodeseq;

typedef struct vstate {
    const char *cmd;
    uint32_t part, parts;
    uint64_t msgs, dups, broken, unmapped, reordered;
    sr_buf keys, maps, vals, nodes; /* of pkey, pmap, vrow, nodeseq */
    sr_buf ids;                     /* the msgids seen, '\n'-framed in a hash set below */
    char **set;                     /* open addressing over the msgids */
    size_t setcap, setn;
    /* the event being read (its values' callback) */
    const char *node, *op;
} vstate;

#define AT(b, T, i) (((T *)(b).data)[i])
#define NOF(b, T) ((b).len / sizeof(T))

static uint64_t strhash(const char *s) { return sr_fnv1a64(s, strlen(s)); }

/* 1 when msgid was seen before (then nothing is added) */
static int seen_msgid(vstate *v, const char *id)
{
    if (v->setn * 2 >= v->setcap) {
        size_t cap = v->setcap ? v->setcap * 2 : 1024;
        char **n = calloc(cap, sizeof *n);
        if (!n) return -1;
        for (size_t i = 0; i < v->setcap; i++)
            if (v->set[i]) {
                size_t j = strhash(v->set[i]) & (cap - 1);
                while (n[j]) j = (j + 1) & (cap - 1);
                n[j] = v->set[i];
            }
        free(v->set);
        v->set = n;
        v->setcap = cap;
    }
    size_t j = strhash(id) & (v->setcap - 1);
    while (v->set[j]) {
        if (!strcmp(v->set[j], id)) return 1;
        j = (j + 1) & (v->setcap - 1);
    }
    if (!(v->set[j] = strdup(id))) return -1;
    v->setn++;
    return 0;
}

static void finding(vstate *v, const sr_stream_msg *m, const char *what)
{
    v->broken++;
    printf("partition %u: %s seq %" PRIu64 " (msgid %s): %s\n", v->part, m->stream, m->sseq, m->msgid, what);
}

static size_t key_of(vstate *v, const char *op, const char *id)
{
    for (size_t i = 0; i < NOF(v->keys, pkey); i++)
        if (!strcmp(AT(v->keys, pkey, i).op, op) && !strcmp(AT(v->keys, pkey, i).id, id)) return i;
    pkey k = {strdup(op), strdup(id)};
    if (!k.op || !k.id || sr_buf_append(&v->keys, &k, sizeof k)) return SIZE_MAX;
    return NOF(v->keys, pkey) - 1;
}

/* the data id of point number `point` of a measurement of node on operator op */
static size_t map_point(const vstate *v, const char *node, const char *op, uint32_t point)
{
    size_t any = SIZE_MAX;
    for (size_t i = NOF(v->maps, pmap); i-- > 0;) {
        const pmap *p = &AT(v->maps, pmap, i);
        if (p->point != point || strcmp(p->op, op)) continue;
        if (!strcmp(p->node, node)) return p->key;
        if (any == SIZE_MAX) any = p->key;
    }
    return any;
}

static int on_value(void *ctx, uint32_t point, sr_vtype type, const sr_sample *s)
{
    vstate *v = ctx;
    size_t k = map_point(v, v->node, v->op, point);
    if (k == SIZE_MAX) {
        v->unmapped++;
        return 0;
    }
    vrow r = {k, sr_value_hash(type, s)};
    return sr_buf_append(&v->vals, &r, sizeof r);
}

static int on_msg(void *ctx, const sr_stream_msg *m)
{
    vstate *v = ctx;
    v->msgs++;
    int d = seen_msgid(v, m->msgid);
    if (d < 0) return SR_ENOMEM;
    if (d) { /* the outbox horizon: the same id published again (docs/cluster.md) */
        v->dups++;
        return 0;
    }
    sr_rec r = SR_REC_INIT;
    sr_event_view ev;
    char what[512];
    if (sr_event_decode(m->data, m->len, &r, &ev) != SR_OK) {
        finding(v, m, "the payload does not decode as an Event");
        sr_rec_close(&r);
        return 0;
    }
    const char *op = ev.op ? ev.op : "";
    char id[96];
    snprintf(id, sizeof id, "%s:%" PRIu64, m->node, ev.seq);
    uint32_t want = sr_cluster_partition(op, v->parts);
    if (!m->node[0]) finding(v, m, "no Suiro-Node header");
    else if (m->seq != ev.seq) {
        snprintf(what, sizeof what, "Suiro-Seq %s, the event's seq is %" PRIu64, m->seq_hdr, ev.seq);
        finding(v, m, what);
    } else if (strcmp(m->msgid, id)) {
        snprintf(what, sizeof what, "Nats-Msg-Id is not node:seq (%s)", id);
        finding(v, m, what);
    } else if (strcmp(m->op, op[0] ? op : "-")) {
        snprintf(what, sizeof what, "Suiro-Operator %s, the event's operator is %s", m->op, op[0] ? op : "-");
        finding(v, m, what);
    } else if (strcmp(m->kind, ev.kind)) {
        snprintf(what, sizeof what, "Suiro-Kind %s, the event is %s", m->kind, ev.kind);
        finding(v, m, what);
    } else if (want != v->part) {
        snprintf(what, sizeof what, "operator %s belongs on partition %u", op[0] ? op : "-", want);
        finding(v, m, what);
    } else {
        /* per node the seqs grow */
        nodeseq *ns = NULL;
        for (size_t i = 0; i < NOF(v->nodes, nodeseq) && !ns; i++)
            if (!strcmp(AT(v->nodes, nodeseq, i).node, m->node)) ns = &AT(v->nodes, nodeseq, i);
        if (!ns) {
            nodeseq n = {strdup(m->node), 0};
            if (!n.node || sr_buf_append(&v->nodes, &n, sizeof n)) {
                sr_rec_close(&r);
                return SR_ENOMEM;
            }
            ns = &AT(v->nodes, nodeseq, NOF(v->nodes, nodeseq) - 1);
        }
        /* A lower seq of a new id is not corruption: the publisher sends
         * asynchronously, and after a lost acknowledgement (a stream leader
         * died) it publishes again from its watermark: what the old leader
         * had lost lands after what it had kept (docs/cluster.md "Replay,
         * verify and audit"). Counted, not broken. */
        if (ev.seq <= ns->last) v->reordered++;
        else ns->last = ev.seq;
        int rc = 0;
        if (ev.has_master && ev.master.kind == SR_MK_DATA_POINT) {
            pmap pm = {strdup(m->node), strdup(op), ev.master.point, key_of(v, op, ev.master.id)};
            if (!pm.node || !pm.op || pm.key == SIZE_MAX || sr_buf_append(&v->maps, &pm, sizeof pm)) rc = SR_ENOMEM;
        } else if (!strcmp(ev.kind, "measurements")) {
            v->node = m->node;
            v->op = op;
            if (sr_event_each_value(&ev, on_value, v) != SR_OK) finding(v, m, "its values do not add up");
        }
        if (rc) {
            sr_rec_close(&r);
            return rc;
        }
    }
    sr_rec_close(&r);
    return 0;
}

/* one point's digest */
typedef struct dig {
    const char *op, *id;
    uint64_t count, hash;
} dig;

static int cmp_vrow(const void *a, const void *b)
{
    const vrow *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return x->h < y->h ? -1 : x->h > y->h;
}

static int cmp_dig(const void *a, const void *b)
{
    const dig *x = a, *y = b;
    int c = strcmp(x->op, y->op);
    return c ? c : strcmp(x->id, y->id);
}

/* the stream's digests (distinct (time, value) per point), sorted */
static int stream_digest(vstate *v, sr_buf *out)
{
    vrow *r = (vrow *)v->vals.data;
    size_t n = NOF(v->vals, vrow);
    if (n) qsort(r, n, sizeof *r, cmp_vrow);
    for (size_t i = 0; i < n; i++) {
        if (i && r[i].key == r[i - 1].key && r[i].h == r[i - 1].h) continue; /* the same (time, value) again */
        dig *last = out->len ? &AT(*out, dig, NOF(*out, dig) - 1) : NULL;
        const pkey *k = &AT(v->keys, pkey, r[i].key);
        if (!last || strcmp(last->op, k->op) || strcmp(last->id, k->id)) {
            dig d = {k->op, k->id, 0, 0};
            if (sr_buf_append(out, &d, sizeof d)) return SR_ENOMEM;
            last = &AT(*out, dig, NOF(*out, dig) - 1);
        }
        last->count++;
        last->hash += r[i].h;
    }
    if (out->len) qsort(out->data, NOF(*out, dig), sizeof(dig), cmp_dig);
    return SR_OK;
}

/* ---- verify: the index's side ---- */

typedef struct idx {
    sr_buf digs;    /* of dig; strings in names */
    char **names;   /* allocated op and id strings */
    size_t nnames;
    char owner[64]; /* who answered */
    uint64_t held;  /* the owner's held replicated events (all partitions; engine/origins.c invariant 6) */
} idx;

static const char *keep(idx *x, const char *s)
{
    char **n = realloc(x->names, (x->nnames + 1) * sizeof *n);
    if (!n) return NULL;
    x->names = n;
    return (x->names[x->nnames++] = strdup(s));
}

static int add_dig(idx *x, const char *op, const char *id, uint64_t count, uint64_t hash)
{
    dig d = {keep(x, op), keep(x, id), count, hash};
    if (!d.op || !d.id) return SR_ENOMEM;
    return sr_buf_append(&x->digs, &d, sizeof d);
}

typedef struct pick {
    uint32_t part, parts;
} pick;
static int in_part(void *ctx, const char *op)
{
    const pick *p = ctx;
    return sr_cluster_partition(op, p->parts) == p->part;
}
static int on_digest(void *ctx, const sr_point_digest *d) { return add_dig(ctx, d->op, d->data_id, d->count, d->hash); }

static size_t to_buf(char *p, size_t size, size_t n, void *ud)
{
    sr_buf *b = ud;
    if (b->len + size * n > (64u << 20)) return 0;
    return sr_buf_append(b, p, size * n) ? 0 : size * n;
}

/* GET url+path with the token: the parsed JSON (NULL with err) */
static json_t *get_json(const char *url, const char *path, const char *token, long *status, char *err, size_t errlen)
{
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(err, errlen, "cannot start libcurl");
        return NULL;
    }
    char full[1024], auth[600], ebuf[CURL_ERROR_SIZE] = "";
    snprintf(full, sizeof full, "%s%s", url, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    struct curl_slist *h = curl_slist_append(NULL, auth);
    sr_buf ans;
    sr_buf_init(&ans);
    curl_easy_setopt(c, CURLOPT_URL, full);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 600000L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, to_buf);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &ans);
    CURLcode cc = curl_easy_perform(c);
    json_t *j = NULL;
    *status = 0;
    if (cc != CURLE_OK) snprintf(err, errlen, "%.400s: %.400s", full, ebuf[0] ? ebuf : curl_easy_strerror(cc));
    else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        json_error_t je;
        if (!(j = json_loadb((const char *)ans.data, ans.len, 0, &je)))
            snprintf(err, errlen, "%.400s: HTTP %ld, not JSON", full, *status);
        else if (*status != 200) {
            snprintf(err, errlen, "%.400s: HTTP %ld %.300s", full, *status, ans.len ? (const char *)ans.data : "");
            json_decref(j);
            j = NULL;
        }
    }
    sr_buf_release(&ans);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return j;
}

/* the owner of part among urls, and its digest */
static int index_from_urls(const char *urls, const char *token, uint32_t part, idx *x, char *err, size_t errlen)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", urls);
    char *save = NULL;
    for (char *u = strtok_r(buf, ",", &save); u; u = strtok_r(NULL, ",", &save)) {
        long st;
        json_t *s = get_json(u, "/admin/v1/cluster", token, &st, err, errlen);
        if (!s) continue;
        int owns = 0;
        size_t i;
        json_t *p;
        json_array_foreach(json_object_get(s, "owned"), i, p) owns |= json_integer_value(p) == (json_int_t)part;
        snprintf(x->owner, sizeof x->owner, "%s", json_string_value(json_object_get(s, "node")) ? json_string_value(json_object_get(s, "node")) : u);
        json_decref(s);
        if (!owns) continue;
        /* the digest's pages (limit 10000), each after the previous one's "next" */
        char path[1024], next[400] = "";
        int rc = 0;
        for (;;) {
            char *esc = next[0] ? curl_easy_escape(NULL, next, 0) : NULL;
            if (next[0] && !esc) {
                snprintf(err, errlen, "out of memory");
                return EX_CONN;
            }
            snprintf(path, sizeof path, "/admin/v1/cluster/partitions/%u/digest?limit=10000%s%s", part,
                     esc ? "&after=" : "", esc ? esc : "");
            curl_free(esc);
            json_t *d = get_json(u, path, token, &st, err, errlen);
            if (!d) return EX_CONN;
            if (!next[0]) x->held = (uint64_t)json_integer_value(json_object_get(d, "heldEvents"));
            json_array_foreach(json_object_get(d, "points"), i, p) {
                const char *op = json_string_value(json_object_get(p, "operator"));
                const char *id = json_string_value(json_object_get(p, "dataId"));
                const char *h = json_string_value(json_object_get(p, "hash"));
                json_t *cnt = json_object_get(p, "count");
                if (!op || !id || !h || !json_is_integer(cnt)) {
                    snprintf(err, errlen, "%.200s%.200s: a point without operator, dataId, count or hash", u, path);
                    rc = EX_CONN;
                    break;
                }
                if (add_dig(x, op, id, (uint64_t)json_integer_value(cnt), strtoull(h, NULL, 16))) {
                    rc = EX_CONN;
                    break;
                }
            }
            const char *nx = json_string_value(json_object_get(d, "next"));
            int again = !rc && nx && nx[0] && strcmp(nx, next);
            if (again && strlen(nx) >= sizeof next) {
                snprintf(err, errlen, "%.200s%.200s: a page's \"next\" longer than %zu bytes", u, path, sizeof next - 1);
                rc = EX_CONN;
                again = 0;
            }
            if (again) snprintf(next, sizeof next, "%s", nx);
            json_decref(d);
            if (!again) break;
        }
        return rc;
    }
    if (!err[0]) snprintf(err, errlen, "none of %s owns partition %u now (GET /admin/v1/cluster)", urls, part);
    return EX_CONN;
}

static void idx_free(idx *x)
{
    for (size_t i = 0; i < x->nnames; i++) free(x->names[i]);
    free(x->names);
    sr_buf_release(&x->digs);
    memset(x, 0, sizeof *x);
}

static void vstate_free(vstate *v)
{
    for (size_t i = 0; i < NOF(v->keys, pkey); i++) {
        free(AT(v->keys, pkey, i).op);
        free(AT(v->keys, pkey, i).id);
    }
    for (size_t i = 0; i < NOF(v->maps, pmap); i++) {
        free(AT(v->maps, pmap, i).node);
        free(AT(v->maps, pmap, i).op);
    }
    for (size_t i = 0; i < NOF(v->nodes, nodeseq); i++) free(AT(v->nodes, nodeseq, i).node);
    for (size_t i = 0; i < v->setcap; i++) free(v->set[i]);
    free(v->set);
    sr_buf_release(&v->keys);
    sr_buf_release(&v->maps);
    sr_buf_release(&v->vals);
    sr_buf_release(&v->nodes);
}

/* compare the two sorted digests: the differences printed, their number */
static uint64_t compare(uint32_t part, const char *owner, const sr_buf *sd, const sr_buf *xd)
{
    size_t i = 0, j = 0, ns = NOF(*sd, dig), nx = NOF(*xd, dig);
    uint64_t bad = 0;
    while (i < ns || j < nx) {
        const dig *a = i < ns ? &AT(*sd, dig, i) : NULL, *b = j < nx ? &AT(*xd, dig, j) : NULL;
        int c = !a ? 1 : !b ? -1 : cmp_dig(a, b);
        if (c < 0) {
            printf("partition %u: %s/%s: the stream holds %" PRIu64 " values, the index of %s none\n", part, a->op,
                   a->id, a->count, owner);
            bad++;
            i++;
        } else if (c > 0) {
            printf("partition %u: %s/%s: the stream holds none, the index of %s %" PRIu64 " values\n", part, b->op,
                   b->id, owner, b->count);
            bad++;
            j++;
        } else {
            if (a->count != b->count || a->hash != b->hash) {
                printf("partition %u: %s/%s: the stream holds %" PRIu64 " values, the index of %s %" PRIu64
                       "%s\n",
                       part, a->op, a->id, a->count, owner, b->count,
                       a->count == b->count ? " (the same count, other values: the hashes differ)" : "");
                bad++;
            }
            i++;
            j++;
        }
    }
    return bad;
}

int sr_cmd_cluster_verify(const sr_command *cmd, int argc, char **argv)
{
    copts o = {0};
    sr_args a;
    int rc = sr_opts_parse(cmd, argc, argv, &o, &a);
    if (rc) return rc == SR_OPTS_HELP ? 0 : rc;
    if (o.url && o.data) return sr_opts_error(cmd, "--url and --data: one or the other");
    const char *token = o.token ? o.token : getenv("SUIRO_TOKEN");
    if (o.url && (!token || !token[0])) return sr_opts_error(cmd, "--url needs --token T (or SUIRO_TOKEN)");
    setup s;
    if ((rc = get_setup(cmd, &o, &s))) return rc;
    sr_engine *e = NULL;
    if (o.data) {
        if (sr_cli_data_dir(cmd->name, o.data)) {
            sr_stream_reader_close(s.r);
            return EX_UNREADABLE;
        }
        sr_key key;
        char err[256];
        if (o.keyfile && sr_key_load(o.keyfile, &key, err, sizeof err)) {
            fprintf(stderr, "suiro %s: %s\n", cmd->name, err);
            sr_stream_reader_close(s.r);
            return EX_USAGE;
        }
        sr_engine_opts eo = {.key = o.keyfile ? &key : NULL, .readonly = 1};
        sr_errinfo ei;
        if ((rc = sr_engine_open(o.data, &eo, &e, &ei))) {
            fprintf(stderr, "suiro %s: %s: %s%s\n", cmd->name, o.data, ei.msg[0] ? ei.msg : sr_strerror(rc),
                    sr_cli_key_hint(rc, o.keyfile != NULL));
            sr_stream_reader_close(s.r);
            return EX_UNREADABLE;
        }
    }
    int ex = EX_OK;
    uint64_t total_bad = 0;
    for (uint32_t p = s.first; p <= s.last && ex != EX_CONN && ex != EX_UNREADABLE; p++) {
        vstate v = {.cmd = cmd->name, .part = p, .parts = s.cfg.cluster_partitions};
        char err[1024] = "";
        if ((rc = sr_stream_each(s.r, p, 0, on_msg, &v, err, sizeof err))) {
            fprintf(stderr, "suiro %s: %s\n", cmd->name, err[0] ? err : sr_strerror(rc));
            vstate_free(&v);
            ex = EX_CONN;
            break;
        }
        sr_buf sd;
        sr_buf_init(&sd);
        idx x = {0};
        uint64_t diffs = 0;
        int have_index = 0;
        if ((rc = stream_digest(&v, &sd))) ex = EX_CONN;
        else if (o.url) {
            if ((rc = index_from_urls(o.url, token, p, &x, err, sizeof err))) {
                fprintf(stderr, "suiro %s: partition %u: %s\n", cmd->name, p, err);
                ex = EX_CONN;
            } else have_index = 1;
        } else if (e) {
            pick pk = {p, s.cfg.cluster_partitions};
            snprintf(x.owner, sizeof x.owner, "%s", o.data);
            if ((rc = sr_engine_partition_digest(e, in_part, &pk, on_digest, &x)) ||
                (rc = sr_engine_cluster_held(e, &x.held, NULL, NULL, 0))) {
                fprintf(stderr, "suiro %s: %s: %s\n", cmd->name, o.data, sr_strerror(rc));
                ex = EX_UNREADABLE;
            } else have_index = 1;
        }
        if (have_index) {
            if (x.digs.len) qsort(x.digs.data, NOF(x.digs, dig), sizeof(dig), cmp_dig);
            diffs = compare(p, x.owner, &sd, &x.digs);
            if (x.held) /* a difference above may be one of them: logged there, applied once its mapping comes */
                printf("partition %u: %s holds %" PRIu64 " replicated event(s) HELD, their data point's mapping not "
                       "there yet (all partitions; docs/cluster.md \"Held values\")\n",
                       p, x.owner, x.held);
        }
        total_bad += v.broken + diffs;
        printf("partition %u: %" PRIu64 " messages, %" PRIu64 " duplicates (the outbox horizon), %" PRIu64
               " published again out of order, %" PRIu64 " broken, %zu points in the stream%s%s",
               p, v.msgs, v.dups, v.reordered, v.broken, NOF(sd, dig), v.unmapped ? ", values of unknown point numbers: " : "",
               "");
        if (v.unmapped) printf("%" PRIu64, v.unmapped);
        if (have_index) printf("; the index of %s: %zu points, %" PRIu64 " differ", x.owner, NOF(x.digs, dig), diffs);
        printf("\n");
        idx_free(&x);
        sr_buf_release(&sd);
        vstate_free(&v);
    }
    if (e) sr_engine_close(e);
    sr_stream_reader_close(s.r);
    if (ex == EX_OK && total_bad) ex = EX_BROKEN;
    printf("%s\n", ex == EX_OK ? "ok: the streams are sound and equal the indexes"
                   : ex == EX_BROKEN ? "broken: see the lines above"
                                     : "not verified: see the error above");
    fflush(stdout);
    return ex;
}

/* ---- audit: an operator's rows of the trail, from its partition's stream ---- */

typedef struct actx {
    const char *op;
    int64_t from, to;
    uint64_t rows, dups;
    char **set; /* the msgids seen (a duplicate is one row) */
    size_t setcap, setn;
} actx;

static int audit_msg(void *ctx, const sr_stream_msg *m)
{
    actx *x = ctx;
    vstate dv = {.set = x->set, .setcap = x->setcap, .setn = x->setn};
    int d = seen_msgid(&dv, m->msgid);
    x->set = dv.set;
    x->setcap = dv.setcap;
    x->setn = dv.setn;
    if (d < 0) return SR_ENOMEM;
    if (d) {
        x->dups++;
        return 0;
    }
    sr_rec r = SR_REC_INIT;
    sr_event_view ev;
    int rc = 0;
    if (sr_event_decode(m->data, m->len, &r, &ev) == SR_OK && !strcmp(ev.op ? ev.op : "", x->op) &&
        ev.ingest_ms >= x->from && ev.ingest_ms < x->to) {
        static sr_audit_holder h;
        sr_audit_rec a;
        if (sr_event_audit(&ev, &h, &a)) {
            json_t *o = sr_audit_item_json(&a);
            if (o) json_object_set_new(o, "node", json_string(m->node)); /* which node wrote it */
            char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
            if (!t || printf("%s\n", t) < 0) rc = SR_EIO;
            else x->rows++;
            free(t);
            json_decref(o);
        }
    }
    sr_rec_close(&r);
    return rc;
}

int sr_cmd_cluster_audit(const sr_command *cmd, int argc, char **argv)
{
    copts o = {0};
    sr_args a;
    int rc = sr_opts_parse(cmd, argc, argv, &o, &a);
    if (rc) return rc == SR_OPTS_HELP ? 0 : rc;
    if (!o.op) return sr_opts_error(cmd, "--operator OP is required");
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    actx x = {.op = o.op, .from = INT64_MIN, .to = INT64_MAX};
    if (o.from && sr_time_parse(o.from, strlen(o.from), now_ms, &x.from))
        return sr_opts_error(cmd, "--from wants an RFC 3339 time, now or -1h, not '%s'", o.from);
    if (o.to && sr_time_parse(o.to, strlen(o.to), now_ms, &x.to))
        return sr_opts_error(cmd, "--to wants an RFC 3339 time, now or -1h, not '%s'", o.to);
    setup s;
    if ((rc = get_setup(cmd, &o, &s))) return rc;
    uint32_t p = sr_cluster_partition(o.op, s.cfg.cluster_partitions);
    char err[512] = "";
    rc = sr_stream_each(s.r, p, 0, audit_msg, &x, err, sizeof err);
    if (rc) fprintf(stderr, "suiro %s: %s\n", cmd->name, err[0] ? err : sr_strerror(rc));
    else fprintf(stderr, "suiro %s: %" PRIu64 " rows of %s from partition %u's stream (%" PRIu64 " duplicates skipped)\n",
                 cmd->name, x.rows, o.op, p, x.dups);
    for (size_t i = 0; i < x.setcap; i++) free(x.set[i]);
    free(x.set);
    sr_stream_reader_close(s.r);
    return rc ? EX_CONN : EX_OK;
}

/* ---- stream keys: keys, erase ---- */

static const char *class_name(int c) { return c == SR_KC_DATA ? "data" : c == SR_KC_AUDIT ? "audit" : "config"; }

typedef struct kctx {
    sr_skv kv;
    const sr_key *master;
    uint64_t n;
} kctx;

static int print_key(void *ctx, const char *key)
{
    kctx *k = ctx;
    sr_buf v;
    sr_buf_init(&v);
    char err[320] = "";
    sr_skey e;
    int rc = k->kv.get(k->kv.ctx, key, &v);
    if (rc == SR_ENOTFOUND) return SR_OK; /* (gone between the listing and the read) */
    if (!rc) rc = sr_skey_unwrap(k->master, v.data, v.len, &e, err, sizeof err);
    sr_buf_release(&v);
    if (rc == SR_EKEY) rc = SR_OK; /* another master: the metadata is still read (nothing is unwrapped here) */
    memset(e.key, 0, sizeof e.key);
    if (rc) {
        printf("{\"kv\":\"%s\",\"error\":\"%s\"}\n", key, sr_err_name(rc));
        return SR_OK;
    }
    int64_t from, to;
    sr_skey_epoch_range(e.cls, e.epoch, e.period_days, &from, &to);
    char id[24], mid[16];
    snprintf(id, sizeof id, "%016" PRIx64, e.id);
    snprintf(mid, sizeof mid, "%08" PRIx32, e.master_id);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "operator", json_string(e.op));
    json_object_set_new(o, "class", json_string(class_name(e.cls)));
    json_object_set_new(o, "epoch", json_integer(e.epoch));
    json_object_set_new(o, "period_days", json_integer(e.period_days));
    json_object_set_new(o, "from", json_integer(from));
    json_object_set_new(o, "to", to == INT64_MAX ? json_null() : json_integer(to));
    json_object_set_new(o, "state", json_string(e.state == SR_SKEY_ACTIVE ? "active" : "destroyed"));
    json_object_set_new(o, "created", json_integer(e.created_ms));
    json_object_set_new(o, "destroyed", json_integer(e.destroyed_ms));
    json_object_set_new(o, "master", json_string(mid));
    char *js = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (js) printf("%s\n", js);
    free(js);
    json_decref(o);
    k->n++;
    return SR_OK;
}

int sr_cmd_cluster_keys(const sr_command *cmd, int argc, char **argv)
{
    copts o = {0};
    sr_args a;
    int rc = sr_opts_parse(cmd, argc, argv, &o, &a);
    if (rc) return rc == SR_OPTS_HELP ? 0 : rc;
    setup s;
    if ((rc = get_setup(cmd, &o, &s))) return rc;
    sr_key none;
    memset(&none, 0, sizeof none);
    kctx k = {.master = &none};
    sr_skv_nats n;
    sr_skv_nats_init(&n, &k.kv, sr_stream_reader_js(s.r), s.cfg.cluster_name, 1);
    rc = sr_skv_nats_keys(&n, print_key, &k);
    if (rc) fprintf(stderr, "suiro %s: the bucket %s not read: %s\n", cmd->name, n.bucket, sr_strerror(rc));
    else fprintf(stderr, "suiro %s: %" PRIu64 " stream keys in %s\n", cmd->name, k.n, n.bucket);
    sr_skv_nats_reset(&n);
    sr_stream_reader_close(s.r);
    return rc ? EX_CONN : EX_OK;
}

int sr_cmd_cluster_erase(const sr_command *cmd, int argc, char **argv)
{
    copts o = {0};
    sr_args a;
    int rc = sr_opts_parse(cmd, argc, argv, &o, &a);
    if (rc) return rc == SR_OPTS_HELP ? 0 : rc;
    char *end = NULL;
    uint64_t id = o.id ? strtoull(o.id, &end, 16) : 0;
    if (!o.id || !id || !end || *end || strlen(o.id) != 16)
        return sr_opts_error(cmd, "--id wants a stream key's id, 16 hex digits (suiro cluster keys), not '%s'",
                             o.id ? o.id : "");
    setup s;
    if ((rc = get_setup(cmd, &o, &s))) return rc;
    char err[512] = "";
    if (!s.cfg.key_file[0]) {
        fprintf(stderr, "suiro %s: %s has no [engine] key_file: the stream keys are wrapped by the cluster's master key\n",
                cmd->name, o.config);
        sr_stream_reader_close(s.r);
        return EX_USAGE;
    }
    sr_key mk;
    if (sr_key_load(s.cfg.key_file, &mk, err, sizeof err)) {
        fprintf(stderr, "suiro %s: %s\n", cmd->name, err);
        sr_stream_reader_close(s.r);
        return EX_USAGE;
    }
    /* the node's log records it (offline: opened here; running: through its Admin API) */
    sr_engine_opts eo = {.key = &mk, .key_source = s.cfg.key_file};
    sr_engine *e = NULL;
    sr_errinfo ei;
    memset(&ei, 0, sizeof ei);
    const char *dir = o.data ? o.data : s.cfg.data_dir;
    rc = sr_engine_open(dir, &eo, &e, &ei);
    if (rc == SR_ELOCKED) {
        memset(&mk, 0, sizeof mk);
        sr_stream_reader_close(s.r);
        char kid[17];
        snprintf(kid, sizeof kid, "%016" PRIx64, id);
        char *av[] = {"admin", "cluster-key-erase", kid, NULL};
        return sr_cli_through_server(cmd->name, dir, o.url, o.token, av, 3);
    }
    if (rc) {
        fprintf(stderr, "suiro %s: %s: %s%s: the erasure is recorded in the node's log, which must open\n", cmd->name,
                dir, ei.msg[0] ? ei.msg : sr_strerror(rc), sr_cli_key_hint(rc, 1));
        memset(&mk, 0, sizeof mk);
        sr_stream_reader_close(s.r);
        return EX_UNREADABLE;
    }
    sr_skeys *sk = NULL;
    sr_skv kv;
    sr_skv_nats n;
    sr_skv_nats_init(&n, &kv, sr_stream_reader_js(s.r), s.cfg.cluster_name, 1);
    rc = sr_skeys_new(&mk, s.cfg.key_rotate_days, &sk);
    memset(&mk, 0, sizeof mk);
    sr_skey_erase_out out;
    memset(&out, 0, sizeof out);
    if (!rc) {
        sr_skeys_set_ttl(sk, 0);
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        const char *who = getenv("USER");
        sr_skey_erase_req q = {e, who && *who ? who : "cli", SR_ACTOR_USER, "cli", "admin", 0, s.cfg.cluster_node, 0};
        rc = sr_skey_erase(sk, &kv, &q, id, (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000, &out, err, sizeof err);
    }
    if (!rc) {
        int64_t from, to;
        sr_skey_epoch_range(out.info.cls, out.info.epoch, out.info.period_days, &from, &to);
        printf("destroyed stream key %016" PRIx64 ": operator '%s', class %s, epoch %u (from %" PRId64 " to %" PRId64
               " UTC ms), by %s (%s; the log's seq %" PRIu64 " and %" PRIu64 ")\n",
               id, out.info.op, class_name(out.info.cls), out.info.epoch, from, to == INT64_MAX ? -1 : to,
               getenv("USER") ? getenv("USER") : "?", out.outcome, out.intent_seq, out.result_seq);
    } else if (rc == SR_ENOTFOUND) {
        fprintf(stderr, "suiro %s: stream key %016" PRIx64 " is not in %s (recorded: refused)\n", cmd->name, id, n.bucket);
    } else {
        fprintf(stderr, "suiro %s: %s%s\n", cmd->name, err[0] ? err : sr_strerror(rc),
                out.outcome[0] ? " (recorded in the node's log)" : "");
    }
    sr_skeys_free(sk);
    sr_skv_nats_reset(&n);
    sr_stream_reader_close(s.r);
    int crc = sr_engine_close(e);
    if (crc && !rc) rc = crc;
    return rc == SR_OK ? EX_OK : rc == SR_EIO ? EX_CONN : EX_BROKEN;
}
