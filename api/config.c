/* api/config.c -- see config.h: the table as data, and what it drives. */
#include "api/config.h"
#include "api/cluster.h"
#include "api/cluster_fwd.h"
#include "api/notify.h"

#include "engine/records.h"
#include "storage/crypto.h"

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define U_(sec, k, field, def, lo, hi, doc)                                                                            \
    {#sec, #k, SR_CFG_U32, offsetof(sr_config, field), sizeof(uint32_t), #def, lo, hi, NULL, doc},
#define S_(sec, k, field, size, def, doc)                                                                              \
    {#sec, #k, SR_CFG_STR, offsetof(sr_config, field), size, def, 0, 0, NULL, doc},
#define E_(sec, k, field, def, vals, doc)                                                                              \
    {#sec, #k, SR_CFG_ENUM, offsetof(sr_config, field), sizeof(((sr_config *)0)->field), def, 0, 0, vals, doc},
const sr_config_key sr_config_keys[] = {SR_CONFIG_KEYS(U_, S_, E_)};
#undef U_
#undef S_
#undef E_
const size_t sr_config_nkeys = sizeof sr_config_keys / sizeof sr_config_keys[0];

/* a default is written as a plain decimal (#def): it must read back as itself */
#define U_(sec, k, field, def, lo, hi, doc)                                                                            \
    _Static_assert((lo) <= (def) && (def) <= (hi), "[" #sec "] " #k ": default out of range");
#define S_(sec, k, field, size, def, doc) _Static_assert(sizeof(def) <= (size), "[" #sec "] " #k ": default too long");
#define E_(sec, k, field, def, vals, doc) _Static_assert(sizeof(vals) < 200, "[" #sec "] " #k ": values");
SR_CONFIG_KEYS(U_, S_, E_)
#undef U_
#undef S_
#undef E_

const sr_config_key *sr_config_find(const char *section, const char *key)
{
    for (size_t i = 0; i < sr_config_nkeys; i++)
        if (!strcmp(sr_config_keys[i].section, section) && !strcmp(sr_config_keys[i].key, key))
            return &sr_config_keys[i];
    return NULL;
}

/* is v one of the '|'-separated words of vals? */
static int enum_ok(const char *vals, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = vals; *p;) {
        const char *bar = strchr(p, '|');
        size_t w = bar ? (size_t)(bar - p) : strlen(p);
        if (w == n && !memcmp(p, v, n)) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

void sr_config_range(const sr_config_key *k, char *buf, size_t len)
{
    switch (k->type) {
    case SR_CFG_U32:
        snprintf(buf, len, "%u … %u", k->min, k->max);
        break;
    case SR_CFG_STR:
        snprintf(buf, len, "up to %zu bytes", k->size - 1);
        break;
    case SR_CFG_ENUM: {
        size_t o = 0;
        buf[0] = 0;
        for (const char *p = k->values; *p && o + 3 < len; p++) {
            if (*p == '|') {
                o += (size_t)snprintf(buf + o, len - o, ", ");
                if (o >= len) o = len - 1;
            } else {
                buf[o++] = *p;
                buf[o] = 0;
            }
        }
        break;
    }
    }
}

static int u32(const char *v, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || !*v || *end || x < lo || x > hi || v[0] < '0' || v[0] > '9') return -1;
    *out = (uint32_t)x;
    return 0;
}

int sr_config_set(sr_config *c, const char *section, const char *key, const char *value, char *err, size_t errlen)
{
    const sr_config_key *k = sr_config_find(section, key);
    if (!k) {
        int sec = 0;
        for (size_t i = 0; i < sr_config_nkeys && !sec; i++) sec = !strcmp(sr_config_keys[i].section, section);
        if (sec) snprintf(err, errlen, "unknown key '%s' in section [%s]", key, section);
        else snprintf(err, errlen, "unknown section [%s] (key '%s')", section, key);
        return -1;
    }
    char *field = (char *)c + k->off;
    char range[256];
    switch (k->type) {
    case SR_CFG_U32: {
        uint32_t x;
        if (u32(value, k->min, k->max, &x)) break;
        memcpy(field, &x, sizeof x);
        return 0;
    }
    case SR_CFG_ENUM:
        if (!enum_ok(k->values, value)) break;
        /* fall through */
    case SR_CFG_STR:
        if (strlen(value) >= k->size) break;
        memcpy(field, value, strlen(value) + 1);
        return 0;
    }
    sr_config_range(k, range, sizeof range);
    snprintf(err, errlen, "bad value for [%s] %s: '%.200s' (%s)", section, key, value, range);
    return -1;
}

void sr_config_defaults(sr_config *c)
{
    memset(c, 0, sizeof *c);
    char err[512];
    for (size_t i = 0; i < sr_config_nkeys; i++) {
        int rc = sr_config_set(c, sr_config_keys[i].section, sr_config_keys[i].key, sr_config_keys[i].def, err,
                               sizeof err);
        (void)rc; /* the table's defaults are in range (checked at compile time, and by tests/api/test_config.c) */
    }
}

typedef struct ctx {
    sr_config *c;
    char *err;
    size_t errlen;
} ctx;

static int handler(void *user, const char *section, const char *name, const char *value)
{
    ctx *x = user;
    /* ini_parse_file returns the line of the first handler failure */
    return sr_config_set(x->c, section, name, value, x->err, x->errlen) == 0;
}

int sr_config_load(sr_config *c, const char *file, char *err, size_t errlen)
{
    ctx x = {c, err, errlen};
    err[0] = 0;
    FILE *f = fopen(file, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", file, strerror(errno));
        return -1;
    }
    int r = ini_parse_file(f, handler, &x);
    fclose(f);
    if (r != 0) {
        char tmp[768];
        if (r < 0) snprintf(tmp, sizeof tmp, "%s: cannot read", file);
        else snprintf(tmp, sizeof tmp, "%s:%d: %s", file, r, err[0] ? err : "not a valid INI line");
        snprintf(err, errlen, "%s", tmp);
        return -1;
    }
    return 0;
}

int sr_config_check(const sr_config *c, char *err, size_t errlen)
{
    if (strcmp(c->http_tls_client_cert, "none") && (!c->http_tls_ca[0] || !c->http_tls_cert[0])) {
        snprintf(err, errlen, "[http] tls_client_cert = %s needs tls_cert, tls_key and tls_ca", c->http_tls_client_cert);
        return -1;
    }
    if (c->tls_listen[0] && (!c->tls_cert[0] || !c->tls_key[0])) {
        snprintf(err, errlen, "[mqtt] tls_listen needs tls_cert and tls_key");
        return -1;
    }
    /* one operator (or app) must not be able to take a shared limit */
    if (c->queue_max_per_op > c->queue_max) {
        snprintf(err, errlen, "[engine] queue_max_per_operator must not exceed queue_max");
        return -1;
    }
    if (c->requests_per_op > c->requests_max) {
        snprintf(err, errlen, "[server] requests_per_operator must not exceed requests_max");
        return -1;
    }
    if (c->work_running_per_op > c->work_running_max || c->work_queue_per_op > c->work_queue_max) {
        snprintf(err, errlen, "[server] work_*_per_operator must not exceed the matching work_*_max");
        return -1;
    }
    if (c->http_uploads_per_op >= c->http_uploads_max || c->http_uploads_per_app > c->http_uploads_per_op) {
        snprintf(err, errlen, "[http] uploads_per_app <= uploads_per_operator < uploads_max is required");
        return -1;
    }
    if (c->password_min_length > c->password_max_length) {
        snprintf(err, errlen, "[users] password_min_length must not exceed password_max_length");
        return -1;
    }
    /* [cluster] (docs/cluster.md): all or nothing */
    if (c->cluster_nats[0]) {
        if (sr_cluster_check_urls(c->cluster_nats, err, errlen)) return -1;
        if (!c->cluster_node[0]) {
            snprintf(err, errlen, "[cluster] nats needs node: this node's name, unique in the cluster");
            return -1;
        }
        if (sr_cluster_check_name("node", c->cluster_node, err, errlen) ||
            sr_cluster_check_name("name", c->cluster_name, err, errlen))
            return -1;
        uint8_t owned[(SR_CLUSTER_MAX_PARTITIONS + 7) / 8];
        if (sr_cluster_parse_owned(c->cluster_owned, c->cluster_partitions, owned, err, errlen)) return -1;
        char adv[160]; /* forwarding (phase 2b): where peers reach this node */
        if (sr_fwd_advertise_url(c->cluster_advertise, c->http_listen, adv, sizeof adv, err, errlen)) return -1;
        /* with [engine] key_file the streams are sealed by stream keys (api/cluster_seal.h, docs/keys.md
         * "Cluster: stream keys"): every node needs the same master key */
    } else if (c->cluster_node[0]) {
        snprintf(err, errlen, "[cluster] node is set but nats is empty: name the NATS servers, or remove node");
        return -1;
    }
    /* algorithm names: rows of the one table (storage/crypto.c) */
    sr_alg alg;
    char why[256];
    if (sr_alg_by_name(c->crypto_signature, SR_ALG_KIND_SIG, &alg, why, sizeof why)) {
        snprintf(err, errlen, "[crypto] signature: %s", why);
        return -1;
    }
    if (sr_alg_by_name(c->crypto_aead, SR_ALG_KIND_AEAD, &alg, why, sizeof why)) {
        snprintf(err, errlen, "[crypto] aead: %s", why);
        return -1;
    }
    return 0;
}

void sr_config_print(const sr_config *c, FILE *f)
{
    for (size_t i = 0; i < sr_config_nkeys; i++) {
        const sr_config_key *k = &sr_config_keys[i];
        if (i == 0 || strcmp(k->section, sr_config_keys[i - 1].section))
            fprintf(f, "%s[%s]\n", i ? "\n" : "", k->section);
        char range[256];
        sr_config_range(k, range, sizeof range);
        fprintf(f, "; %s [%s; default %s]\n", k->doc, range, k->def[0] ? k->def : "empty");
        const char *field = (const char *)c + k->off;
        if (k->type == SR_CFG_U32) {
            uint32_t x;
            memcpy(&x, field, sizeof x);
            fprintf(f, "%s = %u\n", k->key, x);
        } else {
            fprintf(f, "%s =%s%s\n", k->key, field[0] ? " " : "", field);
        }
    }
}

int sr_config_hostport(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s) return -1;
    size_t hl = (size_t)(colon - s);
    const char *h = s;
    if (s[0] == '[') {
        if (hl < 2 || s[hl - 1] != ']') return -1;
        h = s + 1;
        hl -= 2;
    }
    if (hl >= hostlen) return -1;
    memcpy(host, h, hl);
    host[hl] = 0;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 0 || p > 65535) return -1;
    *port = (int)p;
    return 0;
}

void sr_config_retention(const sr_config *c, sr_retention_cfg *r)
{
    *r = (sr_retention_cfg){.default_days = c->retention_default_days,
                            .audit_days = c->retention_audit_days,
                            .audit_floor_days = c->retention_audit_floor_days,
                            .message_id_window_s = c->retention_message_id_window_s,
                            .batch = c->retention_batch,
                            .drop_segments = !strcmp(c->retention_drop_segments, "true")};
}

void sr_config_notify(const sr_config *c, sr_notify_opts *o)
{
    *o = (sr_notify_opts){.smtp_url = c->notify_smtp_url,
                          .mail_from = c->notify_mail_from,
                          .mail_domains = c->notify_mail_domains,
                          .starttls = c->notify_starttls,
                          .smtp_user = c->notify_smtp_user,
                          .smtp_password_env = c->notify_smtp_password_env,
                          .allow_http = c->notify_allow_http != 0,
                          .retry_first_ms = c->notify_retry_first_ms,
                          .retry_max_ms = c->notify_retry_max_ms,
                          .retry_max_age_s = c->notify_retry_max_age_s,
                          .timeout_ms = c->notify_timeout_ms};
}

void sr_config_password_policy(const sr_config *c, sr_password_policy *p)
{
    *p = (sr_password_policy){.min_length = c->password_min_length,
                              .max_length = c->password_max_length,
                              .max_age_days = c->password_max_age_days};
}
