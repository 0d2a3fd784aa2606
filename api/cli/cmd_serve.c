/*
 * api/cli/cmd_serve.c -- `suiro serve`: run the server.
 *   suiro serve [--config FILE] [--data DIR] [--mqtt HOST:PORT] [--http HOST:PORT] [--key-file F] [--log-level L]
 *               [--print-config]
 * Options override the file; the file overrides the defaults
 * (docs/configuration.md). Every value (file and options) goes through the
 * configuration table's checks (api/config.h) before anything opens: a bad
 * one is exit 2 naming it. --print-config prints the effective configuration
 * as INI and exits 0, opening nothing. The data directory must exist (`suiro init`). Prints "listening mqtt=HOST:PORT" on stdout once
 * bound (with :0 the port is the one the system chose).
 */
#include "api/cli/cli.h"
#include "api/config.h"
#include "api/server.h"

#include <stdio.h>
#include <string.h>

typedef struct sopts {
    const char *config, *data, *mqtt, *http, *key_file, *log_level;
    int print_config;
} sopts;

const sr_opt sr_opts_serve[] = {
    SR_OPT_STR("config", 0, "FILE", sopts, config, "the configuration file (INI)"),
    SR_OPT_STR("data", 0, "DIR", sopts, data, "the data directory [./suiro-data]"),
    SR_OPT_STR("mqtt", 0, "HOST:PORT", sopts, mqtt, "GW-IF over MQTT on this address"),
    SR_OPT_STR("http", 0, "HOST:PORT", sopts, http, "AP-IF and GW-IF over HTTP on this address"),
    SR_OPT_STR("key-file", 0, "FILE", sopts, key_file, "the log's key, if it is encrypted: FILE, env:VAR or cmd:COMMAND"),
    SR_OPT_STR("log-level", 0, "LEVEL", sopts, log_level, "debug, info, warn or error"),
    SR_OPT_FLAG("print-config", 0, sopts, print_config, "print the effective configuration (INI) and exit"),
    SR_OPT_END,
};

int sr_cmd_serve(const sr_command *cmd, int argc, char **argv)
{
    sopts so = {0};
    sr_args a;
    int rc = sr_opts_parse(cmd, argc, argv, &so, &a);
    if (rc) return rc == SR_OPTS_HELP ? 0 : rc;
    sr_config cfg;
    sr_config_defaults(&cfg);
    char err[768];
    if (so.config && sr_config_load(&cfg, so.config, err, sizeof err)) {
        fprintf(stderr, "suiro serve: %s\n", err);
        return 2;
    }
    /* the options over the file, through the same checks */
    const struct {
        const char *opt, *value, *section, *key;
    } over[] = {
        {"--data", so.data, "engine", "data_dir"},  {"--mqtt", so.mqtt, "mqtt", "listen"},
        {"--http", so.http, "http", "listen"},      {"--key-file", so.key_file, "engine", "key_file"},
        {"--log-level", so.log_level, "log", "level"},
    };
    for (size_t i = 0; i < sizeof over / sizeof over[0]; i++) {
        if (over[i].value && sr_config_set(&cfg, over[i].section, over[i].key, over[i].value, err, sizeof err)) {
            fprintf(stderr, "suiro serve: %s: %s\n", over[i].opt, err);
            return 2;
        }
    }
    if (sr_config_check(&cfg, err, sizeof err)) {
        fprintf(stderr, "suiro serve: %s%s%s\n", so.config ? so.config : "", so.config ? ": " : "", err);
        return 2;
    }
    if (so.print_config) {
        sr_config_print(&cfg, stdout);
        return fflush(stdout) ? 1 : 0;
    }
    /* only `suiro init` creates a data directory */
    if (sr_cli_data_dir("serve", cfg.data_dir)) return 1;
    sr_server *s = NULL;
    rc = sr_server_open(&cfg, &s, err, sizeof err);
    if (rc) {
        fprintf(stderr, "suiro serve: %s\n", err);
        return 1;
    }
    char host[128];
    int port;
    if (cfg.mqtt_listen[0] && sr_config_hostport(cfg.mqtt_listen, host, sizeof host, &port) == 0)
        printf("listening mqtt=%s:%d\n", host, sr_server_mqtt_port(s));
    if (cfg.http_listen[0] && sr_config_hostport(cfg.http_listen, host, sizeof host, &port) == 0)
        printf("listening %s=%s:%d\n", cfg.http_tls_cert[0] ? "https" : "http", host, sr_server_http_port(s));
    if (cfg.tls_listen[0] && sr_config_hostport(cfg.tls_listen, host, sizeof host, &port) == 0)
        printf("listening mqtts=%s:%d\n", host, sr_server_mqtts_port(s));
    if (cfg.metrics_listen[0] && sr_config_hostport(cfg.metrics_listen, host, sizeof host, &port) == 0)
        printf("listening metrics=%s:%d\n", host, sr_server_metrics_port(s));
    fflush(stdout);
    sr_server_run(s);
    sr_server_close(s);
    return 0;
}
