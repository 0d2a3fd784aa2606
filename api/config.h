/*
 * api/config.h -- the server's configuration: one table of keys.
 *
 * SR_CONFIG_KEYS below is the one place a key is declared: its section,
 * name, type, struct field, default, range (or allowed values) and a
 * one-line doc. From it come the struct sr_config (its fields), the
 * defaults (sr_config_defaults), the parser with its checks (sr_config_set,
 * used by the INI file through libinih and by the command line), and the
 * INI dump of the effective configuration (`suiro serve --print-config`).
 * docs/configuration.md documents every key with the same default and range;
 * tests/api/test_config.c fails when the two disagree.
 *
 * Invariants:
 *  1. A value is checked when it is set: a number in [min, max], an
 *     enumerated value one of its allowed values, a string shorter than its
 *     field. An unknown section or key is an error. So every sr_config that
 *     sr_config_set built is in range, before anything opens.
 *  2. Checks between keys (a TLS listener needs its certificate, a per-
 *     operator limit at most the overall one) are sr_config_check, run once
 *     the file and the command line are applied.
 *  3. sr_config_print's output, read back by sr_config_load over the
 *     defaults, gives the same configuration (the INI round trip).
 *
 * How to add a key: one row in SR_CONFIG_KEYS (a U row for a number, S for a
 * string, E for one of a few words), one row in docs/configuration.md, and
 * the code that uses c->field. Nothing else in the product lists keys (the
 * tests keep a record of every default: tests/api/test_config.c). The
 * table ends with the hook SR_TEST_CONFIG_KEYS, empty in the product: the
 * test build suiro-tabletest adds a key through it (test_tables).
 *
 * libinih reads lines of at most 199 bytes: a longer line of the file (a
 * very long path) is refused as not a valid INI line.
 */
#ifndef SR_CONFIG_H
#define SR_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * U(section, key, field, default, min, max, doc)      uint32_t field
 * S(section, key, field, size, default, doc)          char field[size] (at most size - 1 bytes)
 * E(section, key, field, default, "a|b|c", doc)       char field[16], one of the words
 * Rows of a section stay together (--print-config prints them in this order).
 */
#ifndef SR_TEST_CONFIG_KEYS
#define SR_TEST_CONFIG_KEYS(U, S, E) /* the test build's extra rows (tests/support/tabletest.h) */
#endif
#define SR_CONFIG_KEYS(U, S, E)                                                                                        \
    S(engine, data_dir, data_dir, 1024, "./suiro-data", "the data directory (create it with suiro init)")              \
    S(engine, key_file, key_file, 1024, "", "the log's 256-bit key: a file, env:VAR or cmd:COMMAND; empty: no encryption")                        \
    E(engine, sync, sync, "always", "always|interval|none", "always: acknowledged once fsynced")                       \
    U(engine, queue_max, queue_max, 65536, 16, 16777216, "commands queued for the writer, all operators")               \
    U(engine, queue_max_per_operator, queue_max_per_op, 0, 0, 16777216,                                                \
      "commands queued for the writer, one operator; 0: a quarter of queue_max")                                       \
    U(engine, group_max, group_max, 4096, 1, 65536, "commands the writer takes into one group (one fsync)")          \
    U(engine, head_max, head_max, 1024, 16, 65536,                                                                     \
      "samples per point in memory before a chunk is written; fixed when the index is created")                        \
    U(engine, replay_max_events, replay_max_events, 262144, 64, 4294967295u,                                          \
      "restart bound: a heads checkpoint every half of this many events")                                              \
    U(engine, checkpoint_interval, checkpoint_interval_s, 60, 0, 86400,                                               \
      "restart bound in time: a heads checkpoint at most this often (seconds) while writing; 0: none")                 \
    U(engine, segment_bytes, segment_bytes, 67108864, 1048576, 1073741824, "log segment size (bytes)")                \
    U(engine, zstd_level, zstd_level, 1, 0, 19, "log compression level; 0: none")                                      \
    U(state, snapshot_events, snapshot_events, 20000, 0, 4294967295u,                                                \
      "a state snapshot after this many events since the last; 0: not by events")                                     \
    U(state, snapshot_values, snapshot_values, 500000, 0, 4294967295u,                                               \
      "a state snapshot after this many values since the last; 0: not by values")                                     \
    U(state, snapshot_s, snapshot_s, 3600, 0, 86400,                                                                   \
      "a state snapshot at least this often (seconds) while events are written; 0: not by time")                      \
    U(state, snapshot_keep, snapshot_keep, 64, 0, 65536,                                                               \
      "the newest state snapshots kept; older ones thinned (a gap at most the newer one's age); 0: all kept")         \
    S(mqtt, listen, mqtt_listen, 128, "127.0.0.1:1883", "the GW-IF MQTT listener; empty: none")                        \
    U(mqtt, max_packet, mqtt_max_packet, 1048576, 1024, 268435455, "largest MQTT packet (bytes)")                      \
    U(mqtt, keepalive_max_s, keepalive_max_s, 600, 1, 65535, "longest keep-alive a gateway may ask for")               \
    U(mqtt, inflight_max, inflight_max, 64, 1, 65535, "QoS 1 messages per connection not yet durable")                 \
    U(mqtt, max_output_bytes, mqtt_max_output, 1048576, 4096, 1073741824,                                              \
      "bytes queued to one connection; over it: closed")                                                               \
    U(mqtt, output_stall_ms, mqtt_output_stall_ms, 30000, 100, 3600000,                                                \
      "output held over the low-water mark this long: closed")                                                         \
    U(mqtt, max_subscriptions, mqtt_max_subs, 64, 1, 65535, "filters one connection may hold")                         \
    U(mqtt, max_unauth_bytes, mqtt_max_unauth, 65536, 1024, 268435455,                                                 \
      "a CONNECT, and the bytes held until the login check passes")                                                   \
    S(mqtt, tls_listen, tls_listen, 128, "", "the MQTT-over-TLS listener; empty: none")                                \
    S(mqtt, tls_cert, tls_cert, 1024, "", "server certificate chain (PEM)")                                            \
    S(mqtt, tls_key, tls_key, 1024, "", "its private key (PEM)")                                                       \
    S(mqtt, tls_ca, tls_ca, 1024, "", "CA (PEM) that signs gateway client certificates")                               \
    E(mqtt, tls_client_cert, tls_client_cert, "optional", "none|optional|require", "gateway client certificates")      \
    S(http, listen, http_listen, 128, "127.0.0.1:8080", "the HTTP listener (AP-IF, GW-IF); empty: none")               \
    U(http, max_body, http_max_body, 16777216, 1024, 1073741824, "largest request body (bytes)")                       \
    U(http, max_unauth_body, http_max_unauth_body, 65536, 1024, 1073741824,                                            \
      "bytes held for a request without a known token")                                                                \
    U(http, body_budget, http_body_budget, 134217728, 65536, 4294967295u,                                              \
      "request bytes held for all connections together")                                                               \
    U(http, max_connections, http_max_conns, 10000, 1, 1000000, "open HTTP connections")                               \
    U(http, max_connections_per_address, http_max_conns_per_addr, 1024, 1, 1000000,                                    \
      "open HTTP connections from one address")                                                                        \
    U(http, request_timeout_ms, http_request_timeout_ms, 10000, 100, 3600000,                                          \
      "head and body of a request must arrive by then")                                                                \
    U(http, send_timeout_ms, http_send_timeout_ms, 30000, 100, 3600000,                                                \
      "an answer that makes no progress this long: closed")                                                            \
    S(http, tls_cert, http_tls_cert, 1024, "", "server certificate chain (PEM): the listener speaks HTTPS")             \
    S(http, tls_key, http_tls_key, 1024, "", "its private key (PEM)")                                                  \
    S(http, tls_ca, http_tls_ca, 1024, "", "CA (PEM) that signs app and gateway client certificates")                  \
    E(http, tls_client_cert, http_tls_client_cert, "none", "none|optional|require", "client certificates")             \
    U(http, answer_max_bytes, http_answer_max_bytes, 8388608, 2097152, 1073741824,                                     \
      "one document answer (then paged)")                                                                              \
    U(http, doc_scan_max, http_doc_scan_max, 10000, 1, 100000000, "documents one query examines (then paged)")         \
    U(http, uploads_max, http_uploads_max, 1024, 1, 1000000, "unfinished uploads, all operators")                      \
    U(http, uploads_per_operator, http_uploads_per_op, 64, 1, 1000000, "unfinished uploads of one operator")           \
    U(http, uploads_per_app, http_uploads_per_app, 16, 1, 1000000, "unfinished uploads of one app")                    \
    U(http, upload_idle_ms, http_upload_idle_ms, 600000, 1000, 86400000, "an idle unfinished upload is dropped")       \
    U(server, max_connections, max_connections, 10000, 1, 1000000, "MQTT connections, both listeners")                 \
    U(server, max_connections_per_address, max_conns_per_addr, 256, 1, 1000000,                                        \
      "MQTT connections not yet logged in, per address")                                                               \
    U(server, connect_timeout_ms, connect_timeout_ms, 10000, 100, 600000, "an MQTT connection must send CONNECT by then") \
    U(server, work_running_max, work_running_max, 4, 1, 1024, "jobs on the worker pool at once")                       \
    U(server, work_running_per_operator, work_running_per_op, 2, 1, 1024, "... of one operator")                       \
    U(server, work_queue_max, work_queue_max, 4096, 1, 1000000, "jobs waiting, all operators")                         \
    U(server, work_queue_per_operator, work_queue_per_op, 64, 1, 1000000, "jobs waiting, one operator")                \
    U(server, work_bytes_per_operator, work_bytes_per_op, 67108864, 1048576, 4000000000u,                              \
      "bytes one operator's jobs hold")                                                                                \
    U(server, requests_max, requests_max, 100000, 1, 10000000, "open app requests (and monitor parts), all operators") \
    U(server, requests_per_operator, requests_per_op, 10000, 1, 10000000, "... of one operator")                      \
    U(server, monitors_per_operator, monitors_per_op, 1000, 1, 10000000, "monitors not stopped, one operator")        \
    U(server, stopped_monitors_kept, stopped_monitors_kept, 1000, 1, 10000000,                                         \
      "stopped monitors kept in memory, one operator")                                                                \
    U(server, parse_inline_max, parse_inline_max, 65536, 0, 268435455,                                                 \
      "larger GW-IF messages are checked on a worker")                                                                 \
    U(push, max_queue, push_max_queue, 10000, 1, 10000000, "messages waiting per app; over it the oldest is dropped")  \
    U(push, max_backoff_ms, push_max_backoff_ms, 60000, 500, 3600000, "longest wait between two attempts")             \
    S(notify, smtp_url, notify_smtp_url, 512, "", "the SMTP server alarm mail goes through (smtp://host:port, smtps://...); empty: no mail") \
    S(notify, mail_from, notify_mail_from, 256, "", "the From address of alarm mail")                              \
    S(notify, mail_allowed_domains, notify_mail_domains, 1024, "",                                                   \
      "the domains alarm mail may go to, comma-separated (exact match); empty: none")                                 \
    E(notify, starttls, notify_starttls, "none", "none|try|require", "STARTTLS on smtp://")                         \
    S(notify, smtp_user, notify_smtp_user, 256, "", "SMTP AUTH user; empty: no AUTH")                                \
    S(notify, smtp_password_env, notify_smtp_password_env, 128, "",                                                  \
      "the environment variable holding the SMTP AUTH password")                                                      \
    U(notify, allow_http, notify_allow_http, 0, 0, 1, "1: webhooks over plain http to any host (else loopback only)") \
    U(notify, retry_first_ms, notify_retry_first_ms, 1000, 10, 3600000, "wait after a delivery's first failure, doubling") \
    U(notify, retry_max_ms, notify_retry_max_ms, 300000, 10, 86400000, "longest wait between two attempts")           \
    U(notify, retry_max_age_s, notify_retry_max_age_s, 86400, 1, 31536000,                                           \
      "a delivery still failing this long after its alarm step is given up (a logged event)")                         \
    U(notify, timeout_ms, notify_timeout_ms, 10000, 100, 600000, "one attempt, whole transfer")                      \
    S(backup, directory, backup_dir, 1024, "", "the backup set the schedule and POST /admin/v1/backups write; empty: none") \
    U(backup, at_minute, backup_at_minute, 180, 0, 1439, "the daily backup's minute of the day, UTC (180: 03:00)")     \
    U(backup, interval_s, backup_interval_s, 0, 0, 31536000, "0: daily at at_minute; else one every this many seconds") \
    U(backup, keep, backup_keep, 7, 1, 100000, "complete backups kept; older ones are removed after each backup")      \
    U(retention, default_days, retention_default_days, 0, 0, 36500, "a data class's period without its own; 0: for ever") \
    U(retention, audit_days, retention_audit_days, 0, 0, 36500, "the audit rows' period; 0: for ever")                \
    U(retention, audit_floor_days, retention_audit_floor_days, 365, 0, 36500,                                         \
      "an operator's audit period below it needs the two-person rule")                                               \
    U(retention, sweep_interval_s, retention_sweep_interval_s, 3600, 0, 31536000, "a sweep every this often; 0: none") \
    U(retention, message_id_window_s, retention_message_id_window_s, 0, 0, 315360000,                                \
      "message ids kept at least this long; 0: for ever")                                                            \
    U(retention, batch, retention_batch, 256, 16, 65536, "index keys one Retention event visits at most")            \
    E(retention, drop_segments, retention_drop_segments, "true", "true|false",                                        \
      "a sweep deletes the log segments nothing needs (docs/keys.md \"Segments\")")                                   \
    U(alive, http_silence_s, alive_http_silence_s, 120, 1, 86400,                                                    \
      "an HTTP gateway or an app without a request this long is offline (docs/monitoring.md)")                        \
    U(checkpoint, interval_s, checkpoint_sign_interval_s, 10, 0, 86400,                                              \
      "a signed checkpoint of the log's Merkle tree this often while anything is written, and at a stop; 0: none")    \
    U(keys, rotate_days, key_rotate_days, 0, 0, 36500,                                                                 \
      "data and audit keys start a new epoch this many days after theirs began (docs/keys.md); 0: never")             \
    S(keys, master_next, key_master_next, 1024, "",                                                                    \
      "the next master key (a file, env:VAR or cmd:COMMAND) POST /admin/v1/keys/master re-wraps the keyring under")   \
    U(login, free_failures, login_free_failures, 5, 1, 1000, "per (principal, address) before back-off")               \
    U(login, backoff_max_ms, login_backoff_max_ms, 300000, 1000, 86400000, "the longest back-off")                     \
    U(login, address_failures, login_address_failures, 30, 1, 1000000, "failures per address (bucket)")                \
    U(login, address_refill_ms, login_address_refill_ms, 6000, 1, 86400000, "one more address failure every ...")      \
    U(login, principal_failures, login_principal_failures, 20, 1, 1000000, "failures per principal (bucket)")          \
    U(login, principal_refill_ms, login_principal_refill_ms, 30000, 1, 86400000,                                       \
      "one more principal failure every ...")                                                                          \
    U(login, table_max, login_table_max, 16384, 16, 10000000, "throttle records")                                      \
    U(login, workers, login_workers, 2, 1, 64, "scrypt threads")                                                       \
    U(login, queue_max, login_queue_max, 1024, 1, 100000, "logins waiting for a check")                                \
    U(login, queue_per_address, login_queue_per_address, 256, 1, 100000, "logins of one address waiting")              \
    U(users, password_min_length, password_min_length, 12, 8, 1024, "the shortest password a user may set")          \
    U(users, password_max_length, password_max_length, 128, 8, 4096, "the longest password a user may set")           \
    U(users, password_max_age_days, password_max_age_days, 90, 0, 3650,                                               \
      "days before a password must be changed; 0: never")                                                              \
    U(users, session_ttl_s, session_ttl_s, 3600, 60, 604800, "a user's admin session lives this long (seconds)")     \
    U(admin, pending_ttl_s, pending_ttl_s, 86400, 60, 2592000,                                                        \
      "seconds a privilege change waits for its second admin before it expires")                                       \
    U(alarms, interval_s, alarms_interval_s, 10, 0, 86400, "the alarm rules are evaluated every this often; 0: never")  \
    U(alarms, disk_free_warning_pct, alarms_disk_free_warning_pct, 20, 0, 100,                                       \
      "disk-free: a warning below this % free where the data directory is; 0: off")                                   \
    U(alarms, disk_free_minor_pct, alarms_disk_free_minor_pct, 10, 0, 100, "disk-free: minor below this % free; 0: off") \
    U(alarms, disk_free_major_pct, alarms_disk_free_major_pct, 5, 0, 100, "disk-free: major below this % free; 0: off") \
    U(alarms, disk_free_warning_mb, alarms_disk_free_warning_mb, 0, 0, 1000000000,                                  \
      "disk-free: a warning below this many MiB free; 0: off")                                                        \
    U(alarms, disk_free_minor_mb, alarms_disk_free_minor_mb, 0, 0, 1000000000, "disk-free: minor below this many MiB free; 0: off") \
    U(alarms, disk_free_major_mb, alarms_disk_free_major_mb, 0, 0, 1000000000, "disk-free: major below this many MiB free; 0: off") \
    U(alarms, writer_queue_warning, alarms_writer_queue_warning, 16384, 0, 16777216,                                 \
      "writer-queue: a warning above this many commands waiting for the writer; 0: off")                              \
    U(alarms, clock_sync_check, alarms_clock_sync_check, 1, 0, 1,                                                     \
      "clock-unsync: 1 raises it while the kernel reports the clock unsynchronised (adjtimex); 0: off")               \
    U(alarms, no_data_s, alarms_no_data_s, 0, 0, 315360000,                                                           \
      "no-data: a data point whose newest value is older than this many seconds; 0: off")                             \
    U(alarms, cert_expiry_warning_days, alarms_cert_expiry_warning_days, 30, 0, 3650,                              \
      "cert-expiry: a warning when a TLS listener's certificate expires within this many days; 0: off")              \
    U(alarms, cert_expiry_major_days, alarms_cert_expiry_major_days, 7, 0, 3650,                                      \
      "cert-expiry: major within this many days; 0: off")                                                           \
    U(alarms, login_throttled_warning, alarms_login_throttled_warning, 10, 0, 1000000,                               \
      "login-failures: a warning when the login throttle refused this many logins between two evaluations; 0: off")  \
    U(alarms, login_quiet_s, alarms_login_quiet_s, 300, 1, 86400,                                                     \
      "login-failures: resolved after this many seconds without such a refusal")                                     \
    U(alarms, selfcheck_interval_s, alarms_selfcheck_interval_s, 60, 0, 86400,                                       \
      "selfcheck: the log's records appended since the last check are read back every this often; 0: off")          \
    U(alarms, gateway_skew_ms, alarms_gateway_skew_ms, 60000, 0, 86400000,                                           \
      "gateway-skew: a gateway whose values run ahead of the server's clock by more than this; 0: off")              \
    U(alarms, clock_jump_ms, alarms_clock_jump_ms, 2000, 0, 86400000,                                                 \
      "clock-jump: the wall clock moving this much against the monotonic clock between evaluations; 0: off")          \
    U(alarms, fsync_latency_ms, alarms_fsync_latency_ms, 1000, 0, 10000,                                              \
      "fsync-latency: a warning when the log's fdatasync p99 since the last evaluation is above this; 0: off")       \
    U(alarms, gateway_offline_s, alarms_gateway_offline_s, 0, 0, 315360000,                                           \
      "gateway-offline: a gateway offline for longer than this many seconds; 0: off")                                \
    U(alarms, value_range_quiet_s, alarms_value_range_quiet_s, 600, 1, 86400,                                         \
      "value-out-of-range: resolved after this many seconds without a value of the point refused for its range")      \
    E(audit, reads, audit_reads, "on", "on|off",                                                                       \
      "record every AP-IF and GW-IF read in the audit trail, in batches (api/access.c); off: reads are not recorded") \
    U(audit, flush_ms, audit_flush_ms, 1000, 10, 60000, "a batch of reads is written at least this often")           \
    U(audit, batch_max, audit_batch_max, 1024, 1, 4096, "a batch is written once it holds this many reads")         \
    U(audit, buffer_max, audit_buffer_max, 16384, 16, 1048576,                                                        \
      "reads held unwritten at most; beyond, a read is refused (429, busy) rather than answered unaudited")          \
    U(audit, refusals_per_batch, audit_refusals_per_batch, 16, 0, 4096,                                               \
      "refused writes and controls listed per actor, code and batch (the rest counted); 0: refusals not recorded")   \
    S(crypto, signature, crypto_signature, 32, "ES256",                                                                \
      "the platform key's signature algorithm when one is made: ES256, ES384, PS256 or EdDSA")                         \
    S(crypto, aead, crypto_aead, 32, "AES-256-GCM", "the AEAD of new data keys (docs/keys.md): AES-256-GCM")          \
    E(log, level, log_level, "info", "debug|info|warn|error", "logfmt lines on standard error from this level")        \
    S(metrics, listen, metrics_listen, 128, "",                                                                        \
      "a listener of its own for /metrics, /health, /ready, no authentication (e.g. 127.0.0.1:9464); empty: none")  \
    S(metrics, token_file, metrics_token_file, 1024, "",                                                               \
      "a file holding the bearer token /metrics on the [http] listener asks for; empty: open on a loopback listener only") \
    S(cluster, nats, cluster_nats, 1024, "",                                                                          \
      "NATS JetStream servers, comma-separated nats://host:port (docs/cluster.md); empty: a single node, no cluster") \
    S(cluster, node, cluster_node, 32, "", "this node's name, unique in the cluster (letters, digits, _ and -)")      \
    U(cluster, partitions, cluster_partitions, 16, 1, 999,                                                            \
      "partitions (one stream each); fixed at the first start of the data directory")                                 \
    S(cluster, name, cluster_name, 32, "SUIRO", "the streams' prefix: streams NAME_P000.., subjects NAME.p.000..")    \
    U(cluster, replicas, cluster_replicas, 3, 1, 5, "each stream's replicas (at most the number of NATS servers)")   \
    U(cluster, dedup_window_s, cluster_dedup_window_s, 120, 1, 86400,                                                 \
      "the streams' duplicate window: an event sent again within it is stored once (the outbox horizon)")              \
    U(cluster, ack_timeout_ms, cluster_ack_timeout_ms, 5000, 100, 600000,                                             \
      "an event NATS has not acknowledged after this long is sent again (same id)")                                   \
    U(cluster, max_pending, cluster_max_pending, 65536, 16, 1048576,                                                  \
      "events sent and not yet acknowledged at most; also the answers held for them at most")                         \
    U(cluster, lease_ms, cluster_lease_ms, 10000, 500, 600000,                                                        \
      "a partition's ownership lease: renewed every lease_ms/3, taken over lease_ms + lease_ms/4 after its end")      \
    S(cluster, owned, cluster_owned, 256, "leases",                                                                    \
      "the partitions this node indexes in full (docs/cluster.md): leases (the lease manager decides), or statically all, none, or a list like 0,3,5-7") \
    S(cluster, advertise, cluster_advertise, 160, "",                                                                 \
      "the base URL peers forward requests to (http://host:port); empty: http:// and [http] listen (refused when it is a wildcard address)") \
    U(cluster, forward_timeout_ms, cluster_forward_timeout_ms, 10000, 100, 600000,                                    \
      "a request forwarded to its partition's owner not answered within this long is answered 503 busy (Retry-After)")             \
    U(cluster, forward_wait_ms, cluster_forward_wait_ms, 2000, 0, 60000,                                              \
      "a forwarded request whose session has not reached the owner yet waits for it this long at most")              \
    SR_TEST_CONFIG_KEYS(U, S, E)

typedef struct sr_config {
#define SR_CFG_U_(sec, key, field, def, lo, hi, doc) uint32_t field;
#define SR_CFG_S_(sec, key, field, size, def, doc) char field[size];
#define SR_CFG_E_(sec, key, field, def, vals, doc) char field[16];
    SR_CONFIG_KEYS(SR_CFG_U_, SR_CFG_S_, SR_CFG_E_)
#undef SR_CFG_U_
#undef SR_CFG_S_
#undef SR_CFG_E_
} sr_config;

typedef enum { SR_CFG_U32, SR_CFG_STR, SR_CFG_ENUM } sr_config_type;

/* One row of the table, as data (tests, the docs check, the dump). */
typedef struct sr_config_key {
    const char *section, *key;
    sr_config_type type;
    size_t off, size;    /* the field in sr_config */
    const char *def;     /* the default, as it is written in the file */
    uint32_t min, max;   /* U32 */
    const char *values;  /* ENUM: "a|b|c" */
    const char *doc;
} sr_config_key;

extern const sr_config_key sr_config_keys[];
extern const size_t sr_config_nkeys;

/* The row of [section] key, or NULL. */
const sr_config_key *sr_config_find(const char *section, const char *key);
/* The range of a row as docs/configuration.md writes it: "16 … 65536",
 * "always, interval, none", "up to 1023 bytes". */
void sr_config_range(const sr_config_key *k, char *buf, size_t len);

void sr_config_defaults(sr_config *c);
/* Set one key from its text. 0, or -1 with a message naming the section,
 * the key, the value and what is allowed (invariant 1). */
int sr_config_set(sr_config *c, const char *section, const char *key, const char *value, char *err, size_t errlen);
/* Load FILE over c (sr_config_set for each line). 0, or -1 with a message
 * naming the file and the line. */
int sr_config_load(sr_config *c, const char *file, char *err, size_t errlen);
/* The checks between keys (invariant 2). 0, or -1 with a message. */
int sr_config_check(const sr_config *c, char *err, size_t errlen);

/* The password policy of [users] (engine/records.h sr_password_policy). */
struct sr_password_policy;
void sr_config_password_policy(const sr_config *c, struct sr_password_policy *p);
/* The retention defaults of [retention] (engine/suiro.h sr_retention_cfg). */
struct sr_retention_cfg;
void sr_config_retention(const sr_config *c, struct sr_retention_cfg *r);
/* [notify] as the notifier's options (api/notify.h; its strings point into c). */
struct sr_notify_opts;
void sr_config_notify(const sr_config *c, struct sr_notify_opts *o);
/* Write c as INI: every key, each with its doc and range as a comment. */
void sr_config_print(const sr_config *c, FILE *f);
/* Split "host:port" ("[::1]:1883" for IPv6). 0 or -1. */
int sr_config_hostport(const char *s, char *host, size_t hostlen, int *port);

#endif
