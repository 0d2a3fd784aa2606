/*
 * api/cli/cmd_gwsim.c -- `suiro gwsim`: the gateway simulator (R-DT-1).
 *
 *   suiro gwsim sheet --gateways N --points M [--operator OP]
 *       print a set-up sheet registering N gateways (SIM0001..) with M number
 *       points each (SP0001_01..), for `suiro sheet import`.
 *   suiro gwsim run --port P [--host H] --gateways N --points M [--operator OP]
 *       [--batch B] [--messages K] [--window W] [--mqtt5] [--acks FILE] [--seed S]
 *       [--duration S] [--interval-ms I]
 *       N gateways over MQTT (libmosquitto, one thread, poll), each sending K
 *       GW_MEASUREMENTS messages of B values (2-decimal random walks, 1 s apart)
 *       with QoS 1 and at most W unacknowledged; after a disconnect it
 *       reconnects and sends again what was not acknowledged (same messageId:
 *       the server stores it once). --acks FILE gets one line per PUBACK
 *       ("ack GATEWAY MESSAGE-NUMBER"), flushed at once. Prints a live line of
 *       rates on a terminal and a JSON summary: sent, acknowledged, resent,
 *       errors, PUBACK latency p50/p99.
 */
#include "api/cli/cli.h"

#include <mosquitto.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint64_t mix(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct pend {
    int mid;
    uint64_t n;
    double t;
} pend;

typedef struct gwc {
    struct mosquitto *m;
    char id[32];
    int connected, failed;
    double retry_at;
    uint64_t next, acked;
    pend *p;
    size_t np, cap;
    double next_at; /* --interval-ms: when this gateway may send next */
    uint64_t *redo; /* message numbers to send again after a reconnect */
    size_t nredo, capredo;
} gwc;

typedef struct sim {
    const char *op, *host;
    int port, ngw, npts, batch, window, v5;
    uint64_t messages, seed;
    FILE *acks;
    gwc *g;
    uint64_t sent, acked, resent, errors;
    double *lat;
    size_t nlat, caplat;
} sim;

static sim *S;

static void on_connect(struct mosquitto *m, void *obj, int rc)
{
    (void)m;
    gwc *g = obj;
    if (rc == 0) {
        g->connected = 1;
        /* whatever was in flight is sent again (same messageId) */
        for (size_t i = 0; i < g->np; i++) {
            if (g->nredo == g->capredo) {
                g->capredo = g->capredo ? g->capredo * 2 : 64;
                g->redo = realloc(g->redo, g->capredo * sizeof *g->redo);
            }
            g->redo[g->nredo++] = g->p[i].n;
        }
        g->np = 0;
    } else {
        g->failed = 1;
        S->errors++;
        fprintf(stderr, "gwsim: %s: connection refused (%s)\n", g->id, mosquitto_connack_string(rc));
    }
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc)
{
    (void)m;
    (void)rc;
    gwc *g = obj;
    g->connected = 0;
    g->retry_at = now_s() + 0.2;
}

static void on_publish(struct mosquitto *m, void *obj, int mid)
{
    (void)m;
    gwc *g = obj;
    for (size_t i = 0; i < g->np; i++)
        if (g->p[i].mid == mid) {
            double lat = now_s() - g->p[i].t;
            if (S->nlat == S->caplat) {
                S->caplat = S->caplat ? S->caplat * 2 : 4096;
                S->lat = realloc(S->lat, S->caplat * sizeof *S->lat);
            }
            S->lat[S->nlat++] = lat;
            if (S->acks) {
                fprintf(S->acks, "ack %s %llu\n", g->id, (unsigned long long)g->p[i].n);
                fflush(S->acks);
            }
            g->p[i] = g->p[--g->np];
            g->acked++;
            S->acked++;
            return;
        }
}

/* The payload of message n of gateway k. Values are a function of (k, n),
 * so a resent message is identical. */
static int build(sim *s, int k, uint64_t n, char *buf, size_t cap)
{
    int len = snprintf(buf, cap,
                       "{\"header\":{\"messageType\":\"GW_MEASUREMENTS\",\"messageId\":\"%s-%llu\","
                       "\"timestamp\":\"2026-01-01T00:00:00.000Z\"},\"body\":{\"values\":[",
                       s->g[k].id, (unsigned long long)n);
    for (int i = 0; i < s->batch && len > 0 && (size_t)len < cap - 200; i++) {
        uint64_t idx = n * (uint64_t)s->batch + (uint64_t)i;
        int pt = (int)(idx % (uint64_t)s->npts) + 1;
        uint64_t sec = idx / (uint64_t)s->npts;
        int64_t cents = (int64_t)(mix(s->seed ^ ((uint64_t)k << 40) ^ idx) % 200000) - 100000;
        time_t t = (time_t)(1767225600 + sec); /* 2026-01-01 */
        struct tm tm;
        gmtime_r(&t, &tm);
        len += snprintf(buf + len, cap - (size_t)len,
                        "%s{\"dataId\":\"SP%04d_%02d\",\"timestamp\":\"%04d-%02d-%02dT%02d:%02d:%02dZ\",\"value\":%lld.%02lld}",
                        i ? "," : "", k + 1, pt, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                        tm.tm_sec, (long long)(cents / 100), (long long)llabs(cents % 100));
    }
    len += snprintf(buf + len, cap - (size_t)len, "]}}");
    return len;
}

static void send_one(sim *s, int k, uint64_t n, int again)
{
    gwc *g = &s->g[k];
    static char buf[1 << 20];
    int len = build(s, k, n, buf, sizeof buf);
    char topic[160];
    snprintf(topic, sizeof topic, "wip/v1/%s/gw/%s/data/measurements", s->op, g->id);
    int mid = 0;
    if (mosquitto_publish(g->m, &mid, topic, len, buf, 1, false) != MOSQ_ERR_SUCCESS) {
        /* not connected after all: keep it for later */
        if (g->nredo == g->capredo) {
            g->capredo = g->capredo ? g->capredo * 2 : 64;
            g->redo = realloc(g->redo, g->capredo * sizeof *g->redo);
        }
        g->redo[g->nredo++] = n;
        return;
    }
    if (g->np == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 64;
        g->p = realloc(g->p, g->cap * sizeof *g->p);
    }
    g->p[g->np++] = (pend){mid, n, now_s()};
    s->sent++;
    if (again) s->resent++;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int run(int argc, char **argv)
{
    sim s = {.op = "sim", .host = "127.0.0.1", .ngw = 4, .npts = 10, .batch = 100, .window = 20, .messages = 100,
             .seed = 1};
    const char *ackfile = NULL;
    double duration = 0, interval = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v && strcmp(a, "--mqtt5")) {
            fprintf(stderr, "gwsim run: option '%s' needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--port")) s.port = atoi(argv[++i]);
        else if (!strcmp(a, "--host")) s.host = argv[++i];
        else if (!strcmp(a, "--operator")) s.op = argv[++i];
        else if (!strcmp(a, "--gateways")) s.ngw = atoi(argv[++i]);
        else if (!strcmp(a, "--points")) s.npts = atoi(argv[++i]);
        else if (!strcmp(a, "--batch")) s.batch = atoi(argv[++i]);
        else if (!strcmp(a, "--messages")) s.messages = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--window")) s.window = atoi(argv[++i]);
        else if (!strcmp(a, "--seed")) s.seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--acks")) ackfile = argv[++i];
        else if (!strcmp(a, "--duration")) duration = atof(argv[++i]);
        else if (!strcmp(a, "--interval-ms")) interval = atof(argv[++i]) / 1000.0;
        else if (!strcmp(a, "--mqtt5")) s.v5 = 1;
        else {
            fprintf(stderr, "gwsim run: unknown option '%s'\n", a);
            return 2;
        }
    }
    if (s.port <= 0 || s.ngw < 1 || s.ngw > 9999 || s.npts < 1 || s.npts > 99 || s.batch < 1 || s.batch > 5000 ||
        s.window < 1) {
        fprintf(stderr, "gwsim run: need --port, 1..9999 gateways, 1..99 points, batch 1..5000\n");
        return 2;
    }
    if (ackfile && !(s.acks = fopen(ackfile, "a"))) {
        perror(ackfile);
        return 1;
    }
    S = &s;
    mosquitto_lib_init();
    s.g = calloc((size_t)s.ngw, sizeof *s.g);
    for (int k = 0; k < s.ngw; k++) {
        gwc *g = &s.g[k];
        snprintf(g->id, sizeof g->id, "SIM%04d", k + 1);
        g->m = mosquitto_new(g->id, true, g);
        char user[128], pass[64];
        snprintf(user, sizeof user, "%s/%s", s.op, g->id);
        snprintf(pass, sizeof pass, "sim-secret-%s", g->id);
        mosquitto_username_pw_set(g->m, user, pass);
        mosquitto_int_option(g->m, MOSQ_OPT_PROTOCOL_VERSION, s.v5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
        mosquitto_max_inflight_messages_set(g->m, (unsigned)s.window);
        mosquitto_connect_callback_set(g->m, on_connect);
        mosquitto_disconnect_callback_set(g->m, on_disconnect);
        mosquitto_publish_callback_set(g->m, on_publish);
        if (mosquitto_connect(g->m, s.host, s.port, 60) != MOSQ_ERR_SUCCESS) {
            g->retry_at = now_s() + 0.2;
        }
    }
    struct pollfd *pf = calloc((size_t)s.ngw, sizeof *pf);
    double t0 = now_s(), last_print = t0, last_misc = 0;
    uint64_t total = s.messages * (uint64_t)s.ngw;
    int tty = isatty(2);
    while (s.acked < total) {
        double t = now_s();
        if (duration > 0 && t - t0 > duration) break;
        int alive = 0;
        for (int k = 0; k < s.ngw; k++) {
            gwc *g = &s.g[k];
            if (g->failed) continue;
            alive++;
            if (!g->connected && g->retry_at && t >= g->retry_at) {
                g->retry_at = 0;
                if (mosquitto_reconnect(g->m) != MOSQ_ERR_SUCCESS) g->retry_at = t + 0.2;
            }
            while (g->connected && g->np < (size_t)s.window && (g->nredo || g->next < s.messages)) {
                if (g->nredo) send_one(&s, k, g->redo[--g->nredo], 1);
                else if (interval > 0 && t < g->next_at) break;
                else {
                    send_one(&s, k, g->next++, 0);
                    if (interval > 0) g->next_at = (g->next_at ? g->next_at : t) + interval;
                }
            }
            int fd = mosquitto_socket(g->m);
            pf[k].fd = fd;
            pf[k].events = (short)(fd >= 0 ? POLLIN | (mosquitto_want_write(g->m) ? POLLOUT : 0) : 0);
            pf[k].revents = 0;
        }
        if (!alive) break;
        poll(pf, (nfds_t)s.ngw, 20);
        for (int k = 0; k < s.ngw; k++) {
            gwc *g = &s.g[k];
            if (pf[k].fd < 0 || g->failed) continue;
            if (pf[k].revents & (POLLIN | POLLHUP | POLLERR)) mosquitto_loop_read(g->m, 1);
            if (pf[k].revents & POLLOUT) mosquitto_loop_write(g->m, 1);
        }
        if (t - last_misc > 0.05) {
            for (int k = 0; k < s.ngw; k++) mosquitto_loop_misc(s.g[k].m);
            last_misc = t;
        }
        if (tty && t - last_print >= 1.0) {
            fprintf(stderr, "\rgwsim: %llu sent, %llu acknowledged, %.0f msg/s, %.0f points/s   ",
                    (unsigned long long)s.sent, (unsigned long long)s.acked, (double)s.acked / (t - t0),
                    (double)s.acked * s.batch / (t - t0));
            last_print = t;
        }
    }
    double secs = now_s() - t0;
    if (tty) fputc('\n', stderr);
    for (int k = 0; k < s.ngw; k++) {
        mosquitto_disconnect(s.g[k].m);
        mosquitto_loop_write(s.g[k].m, 1);
        mosquitto_destroy(s.g[k].m);
        free(s.g[k].p);
        free(s.g[k].redo);
    }
    qsort(s.lat, s.nlat, sizeof *s.lat, cmp_d);
    double p50 = s.nlat ? s.lat[s.nlat / 2] * 1000 : 0, p99 = s.nlat ? s.lat[s.nlat * 99 / 100] * 1000 : 0;
    printf("{\"bench\":\"gwsim\",\"gateways\":%d,\"points\":%d,\"batch\":%d,\"sent\":%llu,\"acked\":%llu,"
           "\"resent\":%llu,\"errors\":%llu,\"secs\":%.3f,\"msg_per_s\":%.0f,\"points_per_s\":%.0f,"
           "\"puback_p50_ms\":%.3f,\"puback_p99_ms\":%.3f}\n",
           s.ngw, s.npts, s.batch, (unsigned long long)s.sent, (unsigned long long)s.acked,
           (unsigned long long)s.resent, (unsigned long long)s.errors, secs, (double)s.acked / secs,
           (double)s.acked * s.batch / secs, p50, p99);
    free(s.lat);
    free(s.g);
    free(pf);
    if (s.acks) fclose(s.acks);
    mosquitto_lib_cleanup();
    return s.acked == total && !s.errors ? 0 : 1;
}

static int sheet(int argc, char **argv)
{
    const char *op = "sim";
    int ngw = 4, npts = 10;
    for (int i = 0; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--gateways")) ngw = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--points")) npts = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--operator")) op = argv[i + 1];
        else {
            fprintf(stderr, "gwsim sheet: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    if (ngw < 1 || ngw > 9999 || npts < 1 || npts > 99) {
        fprintf(stderr, "gwsim sheet: 1..9999 gateways, 1..99 points\n");
        return 2;
    }
    printf("#suiro-setup-sheet v1\n# generated by suiro gwsim sheet\n\n[operator]\nid,name\n%s,Simulated operator\n\n", op);
    printf("[gateways]\nid,name,secret\n");
    for (int k = 1; k <= ngw; k++) printf("SIM%04d,Simulated gateway %d,sim-secret-SIM%04d\n", k, k, k);
    printf("\n[facilities]\nid,name\nSF1,Simulated plant\n\n[equipment]\nid,facility,name\nSE1,SF1,Simulated equipment\n");
    printf("\n[devices]\nid,equipment,gateway,name\n");
    for (int k = 1; k <= ngw; k++) printf("SD%04d,SE1,SIM%04d,Simulated device %d\n", k, k, k);
    printf("\n[datapoints]\nid,device,name,type,unit,min,max,kind\n");
    for (int k = 1; k <= ngw; k++)
        for (int p = 1; p <= npts; p++) printf("SP%04d_%02d,SD%04d,Point %d of %d,number,m3/h,-1000000,1000000,measure\n", k, p, k, p, k);
    return 0;
}

int sr_cmd_gwsim(int argc, char **argv)
{
    if (argc >= 1 && !strcmp(argv[0], "sheet")) return sheet(argc - 1, argv + 1);
    if (argc >= 1 && !strcmp(argv[0], "run")) return run(argc - 1, argv + 1);
    fprintf(stderr, "usage: suiro gwsim sheet --gateways N --points M [--operator OP] > sheet.csv\n"
                    "       suiro gwsim run --port P [--host H] --gateways N --points M [--operator OP] [--batch B]\n"
                    "                       [--messages K] [--window W] [--mqtt5] [--acks FILE] [--duration S]\n"
                    "                       [--interval-ms I]   (each gateway sends one message every I ms)\n");
    return 2;
}
