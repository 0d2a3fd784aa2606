/* api/config.c -- see config.h. */
#include "api/config.h"

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sr_config_defaults(sr_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->data_dir, sizeof c->data_dir, "./suiro-data");
    snprintf(c->sync, sizeof c->sync, "always");
    c->queue_max = 65536;
    snprintf(c->mqtt_listen, sizeof c->mqtt_listen, "127.0.0.1:1883");
    c->mqtt_max_packet = 1u << 20;
    c->mqtt_max_unauth = 65536;
    c->max_connections = 10000;
    c->connect_timeout_ms = 10000;
    c->keepalive_max_s = 600;
    c->inflight_max = 64;
    c->mqtt_max_output = 1u << 20;
    c->mqtt_output_stall_ms = 30000;
    c->mqtt_max_subs = 64;
    c->max_conns_per_addr = 256;
    snprintf(c->log_level, sizeof c->log_level, "info");
    snprintf(c->tls_client_cert, sizeof c->tls_client_cert, "optional");
    snprintf(c->http_listen, sizeof c->http_listen, "127.0.0.1:8080");
    c->http_max_body = 16u << 20;
    c->http_max_unauth_body = 65536;
    c->http_body_budget = 128u << 20;
    c->http_max_conns = 10000;
    c->http_max_conns_per_addr = 1024;
    c->http_request_timeout_ms = 10000;
    c->http_send_timeout_ms = 30000;
    snprintf(c->http_tls_client_cert, sizeof c->http_tls_client_cert, "none");
    c->push_max_queue = 10000;
    c->push_max_backoff_ms = 60000;
    c->login_free_failures = 5;
    c->login_backoff_max_ms = 300000;
    c->login_address_failures = 30;
    c->login_address_refill_ms = 6000;
    c->login_principal_failures = 20;
    c->login_principal_refill_ms = 30000;
    c->login_table_max = 16384;
    c->login_workers = 2;
    c->login_queue_max = 1024;
    c->login_queue_per_address = 256;
    c->work_running_max = 4;
    c->work_running_per_op = 2;
    c->work_queue_max = 4096;
    c->work_queue_per_op = 64;
    c->work_bytes_per_op = 64u << 20;
    c->requests_max = 100000;
    c->requests_per_op = 10000;
    c->monitors_per_op = 1000;
    c->stopped_monitors_kept = 1000;
    c->parse_inline_max = 65536;
    c->http_answer_max_bytes = 8u << 20;
    c->http_doc_scan_max = 10000;
    c->http_uploads_max = 1024;
    c->http_uploads_per_op = 64;
    c->http_uploads_per_app = 16;
    c->http_upload_idle_ms = 600000;
}

typedef struct ctx {
    sr_config *c;
    char *err;
    size_t errlen;
} ctx;

static int u32(const char *v, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || !*v || *end || x < lo || x > hi || v[0] == '-') return -1;
    *out = (uint32_t)x;
    return 0;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    ctx *x = user;
    sr_config *c = x->c;
    int bad = 0, known = 1;
#define STR(sec, key, field)                                                                                           \
    else if (!strcmp(section, sec) && !strcmp(name, key)) {                                                            \
        if (strlen(value) >= sizeof c->field) bad = 1;                                                                 \
        else snprintf(c->field, sizeof c->field, "%s", value);                                                        \
    }
#define NUM(sec, key, field, lo, hi) else if (!strcmp(section, sec) && !strcmp(name, key)) bad = u32(value, lo, hi, &c->field);
    if (0) {
    }
    STR("engine", "data_dir", data_dir)
    STR("engine", "key_file", key_file)
    STR("engine", "sync", sync)
    NUM("engine", "queue_max", queue_max, 16, 1u << 24)
    STR("mqtt", "listen", mqtt_listen)
    NUM("mqtt", "max_packet", mqtt_max_packet, 1024, 268435455u)
    NUM("mqtt", "max_unauth_bytes", mqtt_max_unauth, 1024, 268435455u)
    NUM("mqtt", "keepalive_max_s", keepalive_max_s, 1, 65535)
    NUM("mqtt", "inflight_max", inflight_max, 1, 65535)
    NUM("mqtt", "max_output_bytes", mqtt_max_output, 4096, 1u << 30)
    NUM("mqtt", "output_stall_ms", mqtt_output_stall_ms, 100, 3600000)
    NUM("mqtt", "max_subscriptions", mqtt_max_subs, 1, 65535)
    NUM("server", "max_connections_per_address", max_conns_per_addr, 1, 1000000)
    NUM("server", "max_connections", max_connections, 1, 1000000)
    NUM("server", "connect_timeout_ms", connect_timeout_ms, 100, 600000)
    STR("log", "level", log_level)
    STR("http", "listen", http_listen)
    NUM("http", "max_body", http_max_body, 1024, 1u << 30)
    NUM("http", "max_unauth_body", http_max_unauth_body, 1024, 1u << 30)
    NUM("http", "body_budget", http_body_budget, 65536, 4294967295u)
    NUM("http", "max_connections", http_max_conns, 1, 1000000)
    NUM("http", "max_connections_per_address", http_max_conns_per_addr, 1, 1000000)
    NUM("http", "request_timeout_ms", http_request_timeout_ms, 100, 3600000)
    NUM("http", "send_timeout_ms", http_send_timeout_ms, 100, 3600000)
    STR("http", "tls_cert", http_tls_cert)
    STR("http", "tls_key", http_tls_key)
    STR("http", "tls_ca", http_tls_ca)
    STR("http", "tls_client_cert", http_tls_client_cert)
    STR("mqtt", "tls_listen", tls_listen)
    STR("mqtt", "tls_cert", tls_cert)
    STR("mqtt", "tls_key", tls_key)
    STR("mqtt", "tls_ca", tls_ca)
    STR("mqtt", "tls_client_cert", tls_client_cert)
    NUM("push", "max_queue", push_max_queue, 1, 10000000)
    NUM("push", "max_backoff_ms", push_max_backoff_ms, 500, 3600000)
    NUM("login", "free_failures", login_free_failures, 1, 1000)
    NUM("login", "backoff_max_ms", login_backoff_max_ms, 1000, 86400000)
    NUM("login", "address_failures", login_address_failures, 1, 1000000)
    NUM("login", "address_refill_ms", login_address_refill_ms, 1, 86400000)
    NUM("login", "principal_failures", login_principal_failures, 1, 1000000)
    NUM("login", "principal_refill_ms", login_principal_refill_ms, 1, 86400000)
    NUM("login", "table_max", login_table_max, 16, 10000000)
    NUM("login", "workers", login_workers, 1, 64)
    NUM("login", "queue_max", login_queue_max, 1, 100000)
    NUM("login", "queue_per_address", login_queue_per_address, 1, 100000)
    NUM("server", "work_running_max", work_running_max, 1, 1024)
    NUM("server", "work_running_per_operator", work_running_per_op, 1, 1024)
    NUM("server", "work_queue_max", work_queue_max, 1, 1000000)
    NUM("server", "work_queue_per_operator", work_queue_per_op, 1, 1000000)
    NUM("server", "work_bytes_per_operator", work_bytes_per_op, 1u << 20, 4000000000u)
    NUM("server", "requests_max", requests_max, 1, 10000000)
    NUM("server", "requests_per_operator", requests_per_op, 1, 10000000)
    NUM("server", "monitors_per_operator", monitors_per_op, 1, 10000000)
    NUM("server", "stopped_monitors_kept", stopped_monitors_kept, 1, 10000000)
    NUM("server", "parse_inline_max", parse_inline_max, 0, 268435455u)
    NUM("http", "answer_max_bytes", http_answer_max_bytes, 2u << 20, 1u << 30)
    NUM("http", "doc_scan_max", http_doc_scan_max, 1, 100000000)
    NUM("http", "uploads_max", http_uploads_max, 1, 1000000)
    NUM("http", "uploads_per_operator", http_uploads_per_op, 1, 1000000)
    NUM("http", "uploads_per_app", http_uploads_per_app, 1, 1000000)
    NUM("http", "upload_idle_ms", http_upload_idle_ms, 1000, 86400000)
    else known = 0;
#undef STR
#undef NUM
    /* ini_parse_file returns the line of the first handler failure */
    if (!known) snprintf(x->err, x->errlen, "unknown key '%s' in section [%s]", name, section);
    else if (bad) snprintf(x->err, x->errlen, "bad value for [%s] %s: '%s'", section, name, value);
    if (!known || bad) return 0;
    return 1;
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
        char tmp[512];
        if (r < 0) snprintf(tmp, sizeof tmp, "%s: cannot read", file);
        else snprintf(tmp, sizeof tmp, "%s:%d: %s", file, r, err[0] ? err : "not a valid INI line");
        snprintf(err, errlen, "%s", tmp);
        return -1;
    }
    if (strcmp(c->tls_client_cert, "none") && strcmp(c->tls_client_cert, "optional") &&
        strcmp(c->tls_client_cert, "require")) {
        snprintf(err, errlen, "%s: [mqtt] tls_client_cert must be none, optional or require", file);
        return -1;
    }
    if (strcmp(c->http_tls_client_cert, "none") && strcmp(c->http_tls_client_cert, "optional") &&
        strcmp(c->http_tls_client_cert, "require")) {
        snprintf(err, errlen, "%s: [http] tls_client_cert must be none, optional or require", file);
        return -1;
    }
    if (strcmp(c->http_tls_client_cert, "none") && (!c->http_tls_ca[0] || !c->http_tls_cert[0])) {
        snprintf(err, errlen, "%s: [http] tls_client_cert = %s needs tls_cert, tls_key and tls_ca", file,
                 c->http_tls_client_cert);
        return -1;
    }
    if (c->tls_listen[0] && (!c->tls_cert[0] || !c->tls_key[0])) {
        snprintf(err, errlen, "%s: [mqtt] tls_listen needs tls_cert and tls_key", file);
        return -1;
    }
    if (strcmp(c->sync, "always") && strcmp(c->sync, "interval") && strcmp(c->sync, "none")) {
        snprintf(err, errlen, "%s: [engine] sync must be always, interval or none", file);
        return -1;
    }
    /* one operator (or app) must not be able to take a shared limit */
    if (c->work_running_per_op > c->work_running_max || c->work_queue_per_op > c->work_queue_max) {
        snprintf(err, errlen, "%s: [server] work_*_per_operator must not exceed the matching work_*_max", file);
        return -1;
    }
    if (c->requests_per_op > c->requests_max) {
        snprintf(err, errlen, "%s: [server] requests_per_operator must not exceed requests_max", file);
        return -1;
    }
    if (c->http_uploads_per_op >= c->http_uploads_max || c->http_uploads_per_app > c->http_uploads_per_op) {
        snprintf(err, errlen, "%s: [http] uploads_per_app <= uploads_per_operator < uploads_max is required", file);
        return -1;
    }
    return 0;
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
