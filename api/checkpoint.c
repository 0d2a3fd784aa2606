/*
 * api/checkpoint.c -- the server's signed checkpoints of the Merkle tree over
 * the log (issue #18, docs/audit.md "Checkpoints and proofs").
 *
 * Every [checkpoint] interval_s (the server's tick) while anything was
 * written since the last checkpoint, and once at a clean stop: the tree's
 * head as the index has it (sr_read_tree_head), its C2SP tlog-checkpoint
 * body (origin, size, base64 root, and one extension line with the chain
 * tip, the last seq and the time), signed with the platform key
 * (DATA/platform-key.pem, storage/mtree.h sr_tlog_sign), submitted as a
 * CheckpointEvent (sr_cmd_checkpoint), which the writer refuses unless its
 * root and tip are the tree's at that size. Signing is on the loop thread
 * (one signature every interval); the submit does not wait, but at the stop.
 *
 * The origin and key name: "suiro/" and the first 8 bytes of the platform
 * key's id (SHA-256 of its SubjectPublicKeyInfo) in hex, so a new platform
 * key is a new log name.
 */
#include "api/checkpoint.h"

#include "api/curlloop.h"
#include "api/slog.h"
#include "engine/records.h"
#include "storage/crypto.h"
#include "storage/mtree.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct sr_ckpt {
    sr_engine *eng;
    sr_sigkey *key;
    unsigned interval_s;
    int64_t last_ms;      /* when the last one was submitted (wall clock) */
    uint64_t done_through; /* the tree's last seq that the last checkpoint covered, or its own seq */
    char origin[64];
    uint8_t key_id[SR_HASH_LEN];
};

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int sr_ckpt_open(sr_engine *e, const char *data_dir, unsigned interval_s, sr_ckpt **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!interval_s) return SR_OK;
    sr_ckpt *c = calloc(1, sizeof *c);
    if (!c) return SR_ENOMEM;
    c->eng = e;
    c->interval_s = interval_s;
    int rc = sr_platform_key_load(data_dir, "checkpoint", &c->key, err, errlen);
    if (!rc) rc = sr_sigkey_id(c->key, c->key_id);
    if (rc) {
        sr_ckpt_close(c);
        return rc;
    }
    char hex[17];
    sr_hex(c->key_id, 8, hex);
    snprintf(c->origin, sizeof c->origin, "suiro/%s", hex);
    sr_checkpoint last;
    if (sr_read_checkpoint_latest(e, &last) == SR_OK) c->done_through = last.seq;
    c->last_ms = wall_ms();
    *out = c;
    return SR_OK;
}

void sr_ckpt_close(sr_ckpt *c)
{
    if (!c) return;
    sr_sigkey_free(c->key);
    free(c);
}

const char *sr_ckpt_origin(const sr_ckpt *c) { return c ? c->origin : ""; }

static void on_done(void *ctx, const sr_result *r)
{
    (void)ctx;
    if (r->rc)
        sr_slog(SR_LOG_WARN, "checkpoint refused", "error=%s detail=%s", sr_err_name(r->rc), sr_slog_q(r->err.msg));
}

/* build, sign and submit one; SR_DONE: nothing new to sign. With wait,
 * *through gets the last seq of the tree it signed and *own its own
 * record's seq (records submitted before it but applied after the tree
 * head was read come between the two). */
static int make(sr_ckpt *c, const char *reason, int wait, uint64_t *through, uint64_t *own)
{
    sr_tree_head h;
    int rc = sr_read_tree_head(c->eng, &h);
    if (rc) return rc;
    if (!h.size || h.last_seq <= c->done_through) return SR_DONE;
    int64_t now = wall_ms();
    char b64tip[48], ext[160], body[512], note[SR_TLOG_NOTE_MAX];
    sr_base64(h.tip, SR_HASH_LEN, b64tip, 0);
    snprintf(ext, sizeof ext, "suiro-tip %s %" PRIu64 " %" PRId64 "\n", b64tip, h.last_seq, now);
    if (!sr_tlog_body(c->origin, h.size, h.root, ext, body, sizeof body)) return SR_EINVAL;
    if ((rc = sr_tlog_sign(c->key, c->origin, body, note, sizeof note))) return rc;
    sr_cmd_env env = {.op = "", .actor = "system", .kind = SR_ACTOR_SYSTEM, .source = "server"};
    sr_checkpoint_in in = {.head = &h, .time_ms = now, .note = note, .alg = sr_alg_name(sr_sigkey_alg(c->key)),
                           .key_name = c->origin, .reason = reason, .key_id = c->key_id};
    sr_buf b;
    sr_buf_init(&b);
    if ((rc = sr_cmd_checkpoint(&env, &in, &b))) {
        sr_buf_release(&b);
        return rc;
    }
    sr_slice ev = {b.data, b.len};
    if (wait) {
        sr_result res;
        rc = sr_engine_submit_wait(c->eng, &ev, 1, &res);
        if (!rc) rc = res.rc;
        if (!rc) {
            c->done_through = res.seq;
            if (through) *through = h.last_seq;
            if (own) *own = res.seq;
        }
    } else {
        rc = sr_engine_submit(c->eng, &ev, 1, on_done, NULL);
        /* its own record follows the tree's last seq: the next one is due
         * only once something after it is in the tree */
        if (!rc) c->done_through = h.last_seq + 1;
    }
    sr_buf_release(&b);
    c->last_ms = now;
    return rc;
}

void sr_ckpt_tick(sr_ckpt *c)
{
    if (!c || wall_ms() - c->last_ms < (int64_t)c->interval_s * 1000) return;
    int rc = make(c, "interval", 0, NULL, NULL);
    if (rc && rc != SR_DONE) {
        c->last_ms = wall_ms(); /* tried: the next try is an interval later */
        sr_slog(SR_LOG_WARN, "checkpoint not made", "error=%s", sr_err_name(rc));
    }
}

int sr_ckpt_stop(sr_ckpt *c)
{
    if (!c) return SR_OK;
    /* the stop's own last writes (offline marks, the access trail's last
     * batch) may still be in the writer's queue when the head is read: they
     * are appended before this checkpoint's record but not in its tree, so
     * sign again over them (bounded: nothing new is submitted now) */
    int rc = SR_DONE;
    for (int i = 0; i < 3; i++) {
        uint64_t through = 0, own = 0;
        rc = make(c, "stop", 1, &through, &own);
        if (rc || own == through + 1) break;
        c->done_through = through; /* records between the two: the next one is due */
    }
    if (rc && rc != SR_DONE) sr_slog(SR_LOG_WARN, "checkpoint at stop not made", "error=%s", sr_err_name(rc));
    return rc == SR_DONE ? SR_OK : rc;
}
