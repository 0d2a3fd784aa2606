/*
 * api/config.h -- the server's configuration file (INI, through libinih).
 * Every key, its default and meaning: docs/configuration.md. Unknown
 * sections or keys are errors naming the line. Defaults serve on a laptop.
 */
#ifndef SR_CONFIG_H
#define SR_CONFIG_H

#include <stddef.h>
#include <stdint.h>

typedef struct sr_config {
    char data_dir[1024];     /* [engine] data_dir = ./suiro-data */
    char key_file[1024];     /* [engine] key_file = (none: no encryption) */
    char sync[16];           /* [engine] sync = always | interval | none */
    uint32_t queue_max;      /* [engine] queue_max = 65536 */
    char mqtt_listen[128];   /* [mqtt] listen = 127.0.0.1:1883 ("" disables) */
    uint32_t mqtt_max_packet;     /* [mqtt] max_packet = 1048576 */
    uint32_t mqtt_max_unauth;         /* [mqtt] max_unauth_bytes = 65536: a CONNECT, and the bytes held until the login check passes */
    uint32_t max_connections;     /* [server] max_connections = 10000 */
    uint32_t connect_timeout_ms;  /* [server] connect_timeout_ms = 10000 */
    uint32_t keepalive_max_s;     /* [mqtt] keepalive_max_s = 600 */
    uint32_t inflight_max;        /* [mqtt] inflight_max = 64: QoS 1 messages per connection not yet durable */
    uint32_t mqtt_max_output;     /* [mqtt] max_output_bytes = 1048576: bytes queued to one connection; over it: closed */
    uint32_t mqtt_output_stall_ms;/* [mqtt] output_stall_ms = 30000: output held over the low-water mark this long: closed */
    uint32_t mqtt_max_subs;       /* [mqtt] max_subscriptions = 64: filters one connection may hold */
    uint32_t max_conns_per_addr;  /* [server] max_connections_per_address = 256: MQTT connections not yet logged in, per address */
    char log_level[8];       /* [log] level = info */
    char http_listen[128];   /* [http] listen = 127.0.0.1:8080 ("" disables): GW-IF HTTP binding */
    uint32_t http_max_body;  /* [http] max_body = 16777216 */
    uint32_t http_max_unauth_body;  /* [http] max_unauth_body = 65536: body bytes held for a request without a known token */
    uint32_t http_body_budget;      /* [http] body_budget = 134217728: request bytes held for all connections together */
    uint32_t http_max_conns;        /* [http] max_connections = 10000 */
    uint32_t http_max_conns_per_addr; /* [http] max_connections_per_address = 1024 */
    uint32_t http_request_timeout_ms; /* [http] request_timeout_ms = 10000: headers and body of a request must arrive by then */
    uint32_t http_send_timeout_ms;  /* [http] send_timeout_ms = 30000: an answer that makes no progress this long: closed */
    char http_tls_cert[1024];/* [http] tls_cert = (none) server certificate chain: the listener speaks HTTPS */
    char http_tls_key[1024]; /* [http] tls_key = its private key */
    char http_tls_ca[1024];  /* [http] tls_ca = CA (PEM) that signs app / gateway client certificates */
    char http_tls_client_cert[12]; /* [http] tls_client_cert = none | optional | require */
    char tls_listen[128];    /* [mqtt] tls_listen = (none) e.g. 127.0.0.1:8883 */
    char tls_cert[1024];     /* [mqtt] tls_cert = server certificate chain (PEM) */
    char tls_key[1024];      /* [mqtt] tls_key = its private key (PEM) */
    char tls_ca[1024];       /* [mqtt] tls_ca = CA (PEM) that signs gateway client certificates */
    char tls_client_cert[12];/* [mqtt] tls_client_cert = none | optional | require */
    uint32_t push_max_queue;      /* [push] max_queue = 10000: messages waiting per app; over it the oldest is dropped */
    uint32_t push_max_backoff_ms; /* [push] max_backoff_ms = 60000: longest wait between two attempts */
    /* [login]: the login guard (api/loginguard.h, docs/configuration.md "Logins") */
    uint32_t login_free_failures;       /* [login] free_failures = 5: per (principal, address) before back-off */
    uint32_t login_backoff_max_ms;      /* [login] backoff_max_ms = 300000 */
    uint32_t login_address_failures;    /* [login] address_failures = 30: failures per address (bucket) */
    uint32_t login_address_refill_ms;   /* [login] address_refill_ms = 6000: one more every ... */
    uint32_t login_principal_failures;  /* [login] principal_failures = 20: failures per principal (bucket) */
    uint32_t login_principal_refill_ms; /* [login] principal_refill_ms = 30000 */
    uint32_t login_table_max;           /* [login] table_max = 16384: throttle records */
    uint32_t login_workers;             /* [login] workers = 2: scrypt threads */
    uint32_t login_queue_max;           /* [login] queue_max = 1024: checks waiting */
    uint32_t login_queue_per_address;   /* [login] queue_per_address = 256 */
    /* the worker queue (api/workq.h) and per-operator quotas (issue #11 item 7) */
    uint32_t work_running_max;        /* [server] work_running_max = 4: jobs on the worker pool at once */
    uint32_t work_running_per_op;     /* [server] work_running_per_operator = 2: ... of one operator */
    uint32_t work_queue_max;          /* [server] work_queue_max = 4096: jobs waiting, all operators */
    uint32_t work_queue_per_op;       /* [server] work_queue_per_operator = 64: jobs waiting, one operator */
    uint32_t work_bytes_per_op;       /* [server] work_bytes_per_operator = 67108864: bytes one operator's jobs hold */
    uint32_t requests_max;            /* [server] requests_max = 100000: open app requests (and monitor parts), all operators */
    uint32_t requests_per_op;         /* [server] requests_per_operator = 10000: ... of one operator */
    uint32_t monitors_per_op;         /* [server] monitors_per_operator = 1000: monitors not stopped, one operator */
    uint32_t stopped_monitors_kept;   /* [server] stopped_monitors_kept = 1000: stopped monitors kept in memory, one operator */
    uint32_t parse_inline_max;        /* [server] parse_inline_max = 65536: larger GW-IF messages are checked on a worker */
    uint32_t http_answer_max_bytes;   /* [http] answer_max_bytes = 8388608: one document answer (then paged) */
    uint32_t http_doc_scan_max;       /* [http] doc_scan_max = 10000: documents one query examines (then paged) */
    uint32_t http_uploads_max;        /* [http] uploads_max = 1024: unfinished uploads, all operators */
    uint32_t http_uploads_per_op;     /* [http] uploads_per_operator = 64 */
    uint32_t http_uploads_per_app;    /* [http] uploads_per_app = 16 */
    uint32_t http_upload_idle_ms;     /* [http] upload_idle_ms = 600000: an idle unfinished upload is dropped */
} sr_config;

void sr_config_defaults(sr_config *c);
/* Load FILE over the defaults. 0, or -1 with a message naming the line. */
int sr_config_load(sr_config *c, const char *file, char *err, size_t errlen);
/* Split "host:port" ("[::1]:1883" for IPv6). 0 or -1. */
int sr_config_hostport(const char *s, char *host, size_t hostlen, int *port);

#endif
