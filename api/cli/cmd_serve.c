/*
 * api/cli/cmd_serve.c -- `suiro serve`: run the server.
 *   suiro serve [--config FILE] [--data DIR] [--mqtt HOST:PORT] [--key-file F] [--log-level L]
 * Options override the file; the file overrides the defaults
 * (docs/configuration.md). Prints "listening mqtt=HOST:PORT" on stdout once
 * bound (with :0 the port is the one the system chose).
 */
#include "api/cli/cli.h"
#include "api/config.h"
#include "api/server.h"

#include <stdio.h>
#include <string.h>

int sr_cmd_serve(int argc, char **argv)
{
    sr_config cfg;
    sr_config_defaults(&cfg);
    char err[512];
    const char *file = NULL;
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--config") && i + 1 < argc) file = argv[i + 1];
    if (file && sr_config_load(&cfg, file, err, sizeof err)) {
        fprintf(stderr, "suiro serve: %s\n", err);
        return 2;
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--config") && v) i++;
        else if (!strcmp(a, "--data") && v) snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", argv[++i]);
        else if (!strcmp(a, "--mqtt") && v) snprintf(cfg.mqtt_listen, sizeof cfg.mqtt_listen, "%s", argv[++i]);
        else if (!strcmp(a, "--http") && v) snprintf(cfg.http_listen, sizeof cfg.http_listen, "%s", argv[++i]);
        else if (!strcmp(a, "--key-file") && v) snprintf(cfg.key_file, sizeof cfg.key_file, "%s", argv[++i]);
        else if (!strcmp(a, "--log-level") && v) snprintf(cfg.log_level, sizeof cfg.log_level, "%s", argv[++i]);
        else if (!strcmp(a, "--help")) {
            printf("usage: suiro serve [--config FILE] [--data DIR] [--mqtt HOST:PORT] [--http HOST:PORT] [--key-file F] [--log-level L]\n"
                   "configuration keys: docs/configuration.md\n");
            return 0;
        } else {
            fprintf(stderr, "suiro serve: unknown or incomplete option '%s'\n", a);
            return 2;
        }
    }
    sr_server *s = NULL;
    int rc = sr_server_open(&cfg, &s, err, sizeof err);
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
    fflush(stdout);
    sr_server_run(s);
    sr_server_close(s);
    return 0;
}
