/* api/metrics.c -- the metrics table, the exposition writer, /metrics,
 * /health, /ready and the [metrics] listener; see metrics.h. */
#include "api/metrics.h"
#include "api/cluster.h"
#include "api/cluster_blob.h"
#include "api/ryw.h"
#include "api/cluster_fwd.h"
#include "api/cluster_req.h"

#include "api/broker.h"
#include "api/gwif_http.h"
#include "api/httpu.h"
#include "api/push.h"
#include "api/slog.h"
#include "codecs/base/sr_hash.h"
#include "engine/suiro.h"

#include <ftw.h>
#include <h2o.h>
#include <math.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <sys/socket.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

/* ---- counters --------------------------------------------------------------- */

#define RLX memory_order_relaxed

static _Atomic uint64_t m_conn[SR_MCONN__N];
static _Atomic uint64_t m_gw_mqtt;
static _Atomic uint64_t m_tls[SR_MTLS__N];
static _Atomic uint64_t m_login[SR_MLOGIN__N];
static _Atomic uint64_t m_refused[SR_WIRE__COUNT];
static _Atomic int m_ready;

/* the operators' slots: an open-addressing table of SR_METRICS_OPS names,
 * filled under a mutex (a slot's name is written once, then published by
 * its `used` flag with release order), read without one */
static struct opslot {
    _Atomic int used;
    char op[72];
    _Atomic uint64_t values, messages;
} m_ops[SR_METRICS_OPS + 1]; /* + "_other" */
static pthread_mutex_t m_ops_mu = PTHREAD_MUTEX_INITIALIZER;

void sr_metrics_conn(sr_mconn kind, int delta)
{
    if ((unsigned)kind < SR_MCONN__N) atomic_fetch_add_explicit(&m_conn[kind], (uint64_t)(int64_t)delta, RLX);
}
void sr_metrics_gateway_mqtt(int delta) { atomic_fetch_add_explicit(&m_gw_mqtt, (uint64_t)(int64_t)delta, RLX); }
void sr_metrics_tls_failed(sr_mtls where)
{
    if ((unsigned)where < SR_MTLS__N) atomic_fetch_add_explicit(&m_tls[where], 1, RLX);
}
void sr_metrics_login_failed(sr_mlogin why)
{
    if ((unsigned)why < SR_MLOGIN__N) atomic_fetch_add_explicit(&m_login[why], 1, RLX);
}
static _Atomic uint64_t m_gwsig[2], m_appsig[2]; /* [0] the worker queue, [1] the loop */
void sr_metrics_gw_sig_verify(int on_loop) { atomic_fetch_add_explicit(&m_gwsig[on_loop ? 1 : 0], 1, RLX); }
void sr_metrics_app_sig_verify(int on_loop) { atomic_fetch_add_explicit(&m_appsig[on_loop ? 1 : 0], 1, RLX); }

void sr_metrics_refused(sr_wire code)
{
    if ((unsigned)code < SR_WIRE__COUNT && code != SR_WIRE_OK) atomic_fetch_add_explicit(&m_refused[code], 1, RLX);
}

unsigned sr_metrics_op(const char *op)
{
    size_t n = strlen(op);
    if (n >= sizeof m_ops[0].op) return SR_METRICS_OPS;
    unsigned h = sr_hash(op, n) % SR_METRICS_OPS;
    for (unsigned k = 0; k < SR_METRICS_OPS; k++) { /* lock-free for a known operator */
        struct opslot *s = &m_ops[(h + k) % SR_METRICS_OPS];
        if (!atomic_load_explicit(&s->used, memory_order_acquire)) break;
        if (!strcmp(s->op, op)) return (h + k) % SR_METRICS_OPS;
    }
    unsigned r = SR_METRICS_OPS;
    pthread_mutex_lock(&m_ops_mu);
    for (unsigned k = 0; k < SR_METRICS_OPS; k++) {
        struct opslot *s = &m_ops[(h + k) % SR_METRICS_OPS];
        if (atomic_load_explicit(&s->used, memory_order_acquire)) {
            if (!strcmp(s->op, op)) {
                r = (h + k) % SR_METRICS_OPS;
                break;
            }
            continue;
        }
        memcpy(s->op, op, n + 1);
        atomic_store_explicit(&s->used, 1, memory_order_release);
        r = (h + k) % SR_METRICS_OPS;
        break;
    }
    pthread_mutex_unlock(&m_ops_mu);
    return r;
}

void sr_metrics_ingested(unsigned slot, uint64_t nvalues)
{
    if (slot > SR_METRICS_OPS) return;
    atomic_fetch_add_explicit(&m_ops[slot].values, nvalues, RLX);
    atomic_fetch_add_explicit(&m_ops[slot].messages, 1, RLX);
}

void sr_metrics_set_ready(int ready) { atomic_store(&m_ready, ready); }
int sr_metrics_ready(void) { return atomic_load(&m_ready); }

/* ---- the exposition writer ------------------------------------------------ */

static int put(sr_buf *b, const char *s) { return sr_buf_append(b, s, strlen(s)); }

static int put_esc(sr_buf *b, const char *v, int quote)
{
    for (const char *p = v; *p; p++) {
        const char *e = *p == '\\' ? "\\\\" : *p == '\n' ? "\\n" : quote && *p == '"' ? "\\\"" : NULL;
        int rc = e ? put(b, e) : sr_buf_append(b, p, 1);
        if (rc) return rc;
    }
    return SR_OK;
}

int sr_mexp_escape(sr_buf *b, const char *v) { return put_esc(b, v, 1); }

int sr_mexp_head(sr_buf *b, const char *name, sr_mtype type, const char *help)
{
    static const char *const tn[] = {"counter", "gauge", "histogram"};
    int rc = put(b, "# HELP ");
    if (!rc) rc = put(b, name);
    if (!rc) rc = put(b, " ");
    if (!rc) rc = put_esc(b, help, 0);
    if (!rc) rc = put(b, "\n# TYPE ");
    if (!rc) rc = put(b, name);
    if (!rc) rc = put(b, " ");
    if (!rc) rc = put(b, tn[type]);
    if (!rc) rc = put(b, "\n");
    return rc;
}

/* name{label="value",le="x"} */
static int series(sr_buf *b, const char *name, const char *suffix, const char *label, const char *value,
                  const char *le)
{
    int rc = put(b, name);
    if (!rc && suffix) rc = put(b, suffix);
    if (rc || (!label && !le)) return rc;
    rc = put(b, "{");
    if (!rc && label) {
        rc = put(b, label);
        if (!rc) rc = put(b, "=\"");
        if (!rc) rc = put_esc(b, value ? value : "", 1);
        if (!rc) rc = put(b, le ? "\"," : "\"");
    }
    if (!rc && le) {
        rc = put(b, "le=\"");
        if (!rc) rc = put(b, le);
        if (!rc) rc = put(b, "\"");
    }
    if (!rc) rc = put(b, "}");
    return rc;
}

static int num_u64(sr_buf *b, uint64_t v)
{
    char t[32];
    int n = snprintf(t, sizeof t, " %llu\n", (unsigned long long)v);
    return sr_buf_append(b, t, (size_t)n);
}

/* the shortest %g that reads back (Prometheus parses Go floats) */
static void fmt_f64(char *t, size_t cap, double v)
{
    if (isnan(v)) {
        snprintf(t, cap, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(t, cap, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int p = 6; p <= 17; p++) {
        snprintf(t, cap, "%.*g", p, v);
        if (strtod(t, NULL) == v) return;
    }
}

static int num_f64(sr_buf *b, double v)
{
    char t[40];
    fmt_f64(t + 1, sizeof t - 2, v);
    t[0] = ' ';
    size_t n = strlen(t);
    t[n++] = '\n';
    return sr_buf_append(b, t, n);
}

int sr_mexp_u64(sr_buf *b, const char *name, const char *label, const char *value, uint64_t v)
{
    int rc = series(b, name, NULL, label, value, NULL);
    return rc ? rc : num_u64(b, v);
}

int sr_mexp_f64(sr_buf *b, const char *name, const char *label, const char *value, double v)
{
    int rc = series(b, name, NULL, label, value, NULL);
    return rc ? rc : num_f64(b, v);
}

int sr_mexp_hist(sr_buf *b, const char *name, const char *label, const char *value, const uint64_t *bounds,
                 size_t nb, double scale, const sr_hist_snap *h)
{
    uint64_t cum = 0;
    int rc = SR_OK;
    for (size_t i = 0; i < nb && i < SR_HIST_MAX && !rc; i++) {
        char le[40];
        fmt_f64(le, sizeof le, (double)bounds[i] * scale);
        cum += h->bucket[i];
        rc = series(b, name, "_bucket", label, value, le);
        if (!rc) rc = num_u64(b, cum);
    }
    /* +Inf is the count: a bucket read a moment before the count can make
     * the finite buckets pass it; the format wants them monotonic */
    uint64_t count = h->count > cum ? h->count : cum;
    if (!rc) rc = series(b, name, "_bucket", label, value, "+Inf");
    if (!rc) rc = num_u64(b, count);
    if (!rc) rc = series(b, name, "_sum", label, value, NULL);
    if (!rc) rc = num_f64(b, (double)h->sum * scale);
    if (!rc) rc = series(b, name, "_count", label, value, NULL);
    if (!rc) rc = num_u64(b, count);
    return rc;
}

/* ---- the collectors --------------------------------------------------------- */

typedef struct scrape {
    const sr_metrics_src *src;
    sr_buf *b;
    int rc;
    int have_stats;
    sr_engine_stats st;
    const char *name, *label;
} scrape;

static const sr_engine_stats *stats(scrape *s)
{
    if (!s->have_stats && s->src->eng) {
        sr_engine_get_stats(s->src->eng, &s->st);
        s->have_stats = 1;
    }
    return s->have_stats ? &s->st : NULL;
}

#define OUT(call)                                                                                                  \
    do {                                                                                                           \
        if (!s->rc) s->rc = (call);                                                                                \
    } while (0)

static void each_op(scrape *s, int values)
{
    for (unsigned k = 0; k <= SR_METRICS_OPS; k++) {
        struct opslot *o = &m_ops[k];
        if (k < SR_METRICS_OPS && !atomic_load_explicit(&o->used, memory_order_acquire)) continue;
        uint64_t v = atomic_load_explicit(values ? &o->values : &o->messages, RLX);
        if (k == SR_METRICS_OPS && !v) continue;
        OUT(sr_mexp_u64(s->b, s->name, s->label, k < SR_METRICS_OPS ? o->op : "_other", v));
    }
}
static void c_values(scrape *s) { each_op(s, 1); }
static void c_messages(scrape *s) { each_op(s, 0); }

static void c_refused(scrape *s)
{
    for (int w = 1; w < SR_WIRE__COUNT; w++)
        OUT(sr_mexp_u64(s->b, s->name, s->label, sr_wire_code((sr_wire)w), atomic_load_explicit(&m_refused[w], RLX)));
}

static void c_gwsig(scrape *s)
{
    OUT(sr_mexp_u64(s->b, s->name, s->label, "loop", atomic_load_explicit(&m_gwsig[1], RLX)));
    OUT(sr_mexp_u64(s->b, s->name, s->label, "worker", atomic_load_explicit(&m_gwsig[0], RLX)));
}

static void c_appsig(scrape *s)
{
    OUT(sr_mexp_u64(s->b, s->name, s->label, "loop", atomic_load_explicit(&m_appsig[1], RLX)));
    OUT(sr_mexp_u64(s->b, s->name, s->label, "worker", atomic_load_explicit(&m_appsig[0], RLX)));
}

static void queue_one(void *ctx, const char *op, uint32_t depth)
{
    scrape *s = ctx;
    OUT(sr_mexp_u64(s->b, s->name, s->label, op[0] ? op : "_platform", depth)); /* "": the platform's commands */
}
static void c_queue(scrape *s)
{
    if (s->src->eng) sr_engine_queue_each(s->src->eng, queue_one, s);
}

static void c_group(scrape *s)
{
    static const uint64_t bounds[] = SR_HIST_GROUP_BOUNDS;
    const sr_engine_stats *st = stats(s);
    if (st) OUT(sr_mexp_hist(s->b, s->name, NULL, NULL, bounds, SR_HIST_GROUP_N, 1, &st->group_cmds));
}
static void c_commit(scrape *s)
{
    static const uint64_t bounds[] = SR_HIST_US_BOUNDS;
    const sr_engine_stats *st = stats(s);
    if (st) OUT(sr_mexp_hist(s->b, s->name, NULL, NULL, bounds, SR_HIST_US_N, 1e-6, &st->commit_us));
}
static void c_fsync(scrape *s)
{
    static const uint64_t bounds[] = SR_HIST_US_BOUNDS;
    const sr_engine_stats *st = stats(s);
    if (st) OUT(sr_mexp_hist(s->b, s->name, NULL, NULL, bounds, SR_HIST_US_N, 1e-6, &st->fsync_us));
}
static void c_events(scrape *s)
{
    const sr_engine_stats *st = stats(s);
    if (st) OUT(sr_mexp_u64(s->b, s->name, NULL, NULL, st->events));
}

/* read-your-writes (api/ryw.h) */
static void c_ryw(scrape *s)
{
    sr_ryw_stats r;
    sr_ryw_get_stats(&r);
    OUT(sr_mexp_u64(s->b, s->name, s->label, "at_once", r.at_once));
    OUT(sr_mexp_u64(s->b, s->name, s->label, "waited", r.waited));
    OUT(sr_mexp_u64(s->b, s->name, s->label, "timeout", r.timeout));
    OUT(sr_mexp_u64(s->b, s->name, s->label, "refused", r.refused));
}
static void c_ryw_waiting(scrape *s)
{
    sr_ryw_stats r;
    sr_ryw_get_stats(&r);
    OUT(sr_mexp_u64(s->b, s->name, NULL, NULL, r.waiting));
}
/* the cluster mode (api/cluster.h): zeros without it */
static void c_cluster_events(scrape *s)
{
    sr_cluster_stats c;
    (void)sr_cluster_get_stats(&c);
    OUT(sr_mexp_u64(s->b, s->name, s->label, "published", c.published));
    OUT(sr_mexp_u64(s->b, s->name, s->label, "acked", c.acked));
    OUT(sr_mexp_u64(s->b, s->name, s->label, "republished", c.republished));
    OUT(sr_mexp_u64(s->b, s->name, s->label, "error", c.errors));
    OUT(sr_mexp_u64(s->b, s->name, s->label, "replicated", c.replicated));
    OUT(sr_mexp_u64(s->b, s->name, s->label, "sealed", c.sealed));
    OUT(sr_mexp_u64(s->b, s->name, s->label, "erased", c.erased));
}
/* the consumers (api/cluster_sub.c, phase 2a) */
static void c_cluster_consumed(scrape *s)
{
    sr_csub_stats c;
    sr_csub_get_stats(sr_cluster_consumers(), &c);
    OUT(sr_mexp_u64(s->b, s->name, s->label, "reg", c.reg));
    OUT(sr_mexp_u64(s->b, s->name, s->label, "data", c.data));
    OUT(sr_mexp_u64(s->b, s->name, s->label, "refused", c.refused));
    OUT(sr_mexp_u64(s->b, s->name, s->label, "unsealed", c.unsealed));
}
static void c_cluster_dups(scrape *s)
{
    sr_csub_stats c;
    sr_csub_get_stats(sr_cluster_consumers(), &c);
    OUT(sr_mexp_u64(s->b, s->name, NULL, NULL, c.duplicates));
}
static void c_cluster_lag(scrape *s)
{
    sr_csub *cs = sr_cluster_consumers();
    sr_csub_stats c;
    sr_csub_get_stats(cs, &c);
    for (uint32_t p = 0; p < c.partitions; p++) {
        char l[16];
        snprintf(l, sizeof l, "%u", p);
        OUT(sr_mexp_u64(s->b, s->name, s->label, l, sr_csub_lag(cs, p)));
    }
}
static void c_cluster_confirmed(scrape *s)
{
    sr_cluster_stats c;
    (void)sr_cluster_get_stats(&c);
    OUT(sr_mexp_u64(s->b, s->name, NULL, NULL, c.confirmed));
}
static void c_cluster_pending(scrape *s)
{
    sr_cluster_stats c;
    (void)sr_cluster_get_stats(&c);
    OUT(sr_mexp_u64(s->b, s->name, NULL, NULL, c.log_last > c.confirmed ? c.log_last - c.confirmed : 0));
}
static void c_cluster_held(scrape *s)
{
    sr_cluster_stats c;
    (void)sr_cluster_get_stats(&c);
    OUT(sr_mexp_u64(s->b, s->name, NULL, NULL, c.held));
}
/* the replicated values held for their point's mapping (engine/origins.c invariant 6) */
static void c_cluster_held_events(scrape *s)
{
    uint64_t n = 0;
    if (s->src->eng && sr_engine_cluster_held(s->src->eng, &n, NULL, NULL, 0)) n = 0; /* unreadable: 0 */
    OUT(sr_mexp_u64(s->b, s->name, NULL, NULL, n));
}
/* files' bytes through the blob stream (api/cluster_blob.h) */
static void c_cluster_blobs(scrape *s)
{
    sr_cblobs_stats c;
    sr_cblobs_get_stats(sr_cblobs_self(), &c);
    OUT(sr_mexp_u64(s->b, s->name, s->label, "published", c.published));
    OUT(sr_mexp_u64(s->b, s->name, s->label, "fetched", c.fetched));
    OUT(sr_mexp_u64(s->b, s->name, s->label, "failed", c.failed));
    OUT(sr_mexp_u64(s->b, s->name, s->label, "refused", c.refused));
}
static void c_cluster_blobs_pending(scrape *s)
{
    sr_cblobs_stats c;
    sr_cblobs_get_stats(sr_cblobs_self(), &c);
    OUT(sr_mexp_u64(s->b, s->name, NULL, NULL, c.pending));
}
static void c_cluster_connected(scrape *s)
{
    sr_cluster_stats c;
    (void)sr_cluster_get_stats(&c);
    OUT(sr_mexp_u64(s->b, s->name, NULL, NULL, (uint64_t)c.connected));
}
static void c_cluster_owned(scrape *s)
{
    sr_cluster_own_stats o;
    uint32_t owned;
    (void)sr_cluster_get_own_stats(&o, &owned);
    OUT(sr_mexp_u64(s->b, s->name, NULL, NULL, owned));
}
static void c_cluster_changes(scrape *s)
{
    sr_cluster_own_stats o;
    uint32_t owned;
    (void)sr_cluster_get_own_stats(&o, &owned);
    for (int i = 0; i < 4; i++) OUT(sr_mexp_u64(s->b, s->name, s->label, sr_cluster_own_why(i), o.changes[i]));
}
/* forwarding (api/cluster_fwd.h, phase 2b) */
static void c_cluster_fwd(scrape *s)
{
    sr_fwd_stats f;
    sr_fwd_get_stats(&f);
    for (int i = 0; i < 6; i++) OUT(sr_mexp_u64(s->b, s->name, s->label, sr_fwd_outcome_name(i), f.outcome[i]));
}
static void c_cluster_fwd_waits(scrape *s)
{
    sr_fwd_stats f;
    sr_fwd_get_stats(&f);
    for (int i = 0; i < 3; i++) OUT(sr_mexp_u64(s->b, s->name, s->label, sr_fwd_wait_name(i), f.waits[i]));
}
static void c_cluster_fwd_served(scrape *s)
{
    sr_fwd_stats f;
    sr_fwd_get_stats(&f);
    OUT(sr_mexp_u64(s->b, s->name, NULL, NULL, f.served));
}
static void c_cluster_fwd_lat(scrape *s)
{
    static const uint64_t bounds[] = SR_HIST_US_BOUNDS;
    sr_fwd_stats f;
    sr_fwd_get_stats(&f);
    OUT(sr_mexp_hist(s->b, s->name, NULL, NULL, bounds, SR_HIST_US_N, 1e-6, &f.lat_us));
}
/* request flows across nodes (api/cluster_req.h): three labels, one series
 * each (the values are fixed names: nothing to escape) */
static void c_cluster_relayed(scrape *s)
{
    static const char *const dirs[SR_RELAY_DIRS] = {"out", "in"};
    for (int d = 0; d < SR_RELAY_DIRS; d++)
        for (int k = 0; k < SR_RELAY_KINDS; k++)
            for (int o = 0; o < SR_RELAY_OUTCOMES; o++) {
                char t[200];
                int n = snprintf(t, sizeof t, "%s{dir=\"%s\",kind=\"%s\",outcome=\"%s\"} %llu\n", s->name, dirs[d],
                                 sr_relay_kind_name(k), sr_relay_outcome_name(o),
                                 (unsigned long long)sr_relay_counted(d, k, o));
                if (n > 0 && (size_t)n < sizeof t) OUT(sr_buf_append(s->b, t, (size_t)n));
            }
}

static void c_cluster_live(scrape *s)
{
    sr_cluster_own_stats o;
    uint32_t owned;
    (void)sr_cluster_get_own_stats(&o, &owned);
    OUT(sr_mexp_u64(s->b, s->name, NULL, NULL, o.live));
}

static void c_conns(scrape *s)
{
    size_t http = 0, gw_http = 0, apps = 0;
    sr_gwhttp_sessions(s->src->http, &http, &gw_http, &apps);
    OUT(sr_mexp_u64(s->b, s->name, s->label, "mqtt", atomic_load_explicit(&m_conn[SR_MCONN_MQTT], RLX)));
    OUT(sr_mexp_u64(s->b, s->name, s->label, "mqtts", atomic_load_explicit(&m_conn[SR_MCONN_MQTTS], RLX)));
    OUT(sr_mexp_u64(s->b, s->name, s->label, "http", http));
    OUT(sr_mexp_u64(s->b, s->name, s->label, "gateways", atomic_load_explicit(&m_gw_mqtt, RLX) + gw_http));
    OUT(sr_mexp_u64(s->b, s->name, s->label, "apps", apps));
}

static void state_one(void *ctx, int monitors, const char *state, size_t n)
{
    scrape *s = ctx;
    if (!monitors == !strcmp(s->name, "suiro_monitors")) return;
    OUT(sr_mexp_u64(s->b, s->name, s->label, state, n));
}
static void c_states(scrape *s)
{
    if (s->src->broker) sr_broker_states(s->src->broker, state_one, s);
}

static void push_one(void *ctx, const char *op, const char *app, const sr_push_counts *c)
{
    scrape *s = ctx;
    char v[150];
    snprintf(v, sizeof v, "%s/%s", op, app);
    OUT(sr_mexp_u64(s->b, s->name, s->label, v, !strcmp(s->name, "suiro_push_queued") ? c->queued : c->dropped));
}
static void c_push(scrape *s)
{
    if (s->src->push) sr_push_each(s->src->push, push_one, s);
}

static void c_map(scrape *s)
{
    const sr_engine_stats *st = stats(s);
    if (st) OUT(sr_mexp_u64(s->b, s->name, NULL, NULL, st->map_used_bytes));
}
static void c_map_size(scrape *s)
{
    const sr_engine_stats *st = stats(s);
    if (st) OUT(sr_mexp_u64(s->b, s->name, NULL, NULL, st->map_bytes));
}

static _Thread_local uint64_t walk_sum;
static int walk_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)p;
    (void)f;
    if (flag == FTW_F) walk_sum += (uint64_t)sb->st_size;
    return 0;
}
static uint64_t dir_bytes(const char *data, const char *sub)
{
    char p[1100];
    snprintf(p, sizeof p, "%s/%s", data, sub);
    walk_sum = 0;
    if (nftw(p, walk_one, 16, FTW_PHYS)) return 0;
    return walk_sum;
}
static void c_log_bytes(scrape *s)
{
    if (s->src->data_dir) OUT(sr_mexp_u64(s->b, s->name, NULL, NULL, dir_bytes(s->src->data_dir, "log")));
}
static void c_blob_bytes(scrape *s)
{
    if (s->src->data_dir) OUT(sr_mexp_u64(s->b, s->name, NULL, NULL, dir_bytes(s->src->data_dir, "blobs")));
}
static void c_disk(scrape *s)
{
    struct statvfs v;
    if (!s->src->data_dir || statvfs(s->src->data_dir, &v)) return;
    int size = !strcmp(s->name, "suiro_disk_size_bytes");
    OUT(sr_mexp_u64(s->b, s->name, NULL, NULL, (uint64_t)(size ? v.f_blocks : v.f_bavail) * v.f_frsize));
}

/* /proc/self/stat: utime (14) and stime (15) in clock ticks, rss (24) in pages */
static int proc_stat(double *cpu_s, uint64_t *rss)
{
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f) return -1;
    char line[1024];
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = 0;
    const char *p = strrchr(line, ')'); /* the command name may hold spaces */
    if (!p) return -1;
    unsigned long long ut = 0, st = 0;
    long long r = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %*u %*u %lld",
               &ut, &st, &r) != 3)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    *cpu_s = (double)(ut + st) / (double)(hz > 0 ? hz : 100);
    *rss = r > 0 ? (uint64_t)r * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
    return 0;
}
static void c_cpu(scrape *s)
{
    double cpu;
    uint64_t rss;
    if (!proc_stat(&cpu, &rss)) OUT(sr_mexp_f64(s->b, s->name, NULL, NULL, cpu));
}
static void c_rss(scrape *s)
{
    double cpu;
    uint64_t rss;
    if (!proc_stat(&cpu, &rss)) OUT(sr_mexp_u64(s->b, s->name, NULL, NULL, rss));
}

static void c_tls(scrape *s)
{
    OUT(sr_mexp_u64(s->b, s->name, s->label, "mqtts", atomic_load_explicit(&m_tls[SR_MTLS_MQTTS], RLX)));
    OUT(sr_mexp_u64(s->b, s->name, s->label, "https", atomic_load_explicit(&m_tls[SR_MTLS_HTTPS], RLX)));
}
static void c_login(scrape *s)
{
    OUT(sr_mexp_u64(s->b, s->name, s->label, "wrong_secret", atomic_load_explicit(&m_login[SR_MLOGIN_WRONG], RLX)));
    OUT(sr_mexp_u64(s->b, s->name, s->label, "throttled", atomic_load_explicit(&m_login[SR_MLOGIN_THROTTLED], RLX)));
}
static void c_ready(scrape *s) { OUT(sr_mexp_u64(s->b, s->name, NULL, NULL, (uint64_t)sr_metrics_ready())); }

/*
 * X(name, type, label, help, collector): the one table of metrics
 * (docs/monitoring.md lists each with its meaning; test_metrics checks
 * that every name here is there).
 */
#define SR_METRICS(X)                                                                                              \
    X("suiro_values_ingested_total", COUNTER, "operator", "Values from gateways stored durably, per operator",    \
      c_values)                                                                                                    \
    X("suiro_messages_ingested_total", COUNTER, "operator",                                                       \
      "Gateway values messages stored durably, per operator", c_messages)                                          \
    X("suiro_messages_refused_total", COUNTER, "code", "Gateway messages refused, by wire error code", c_refused)  \
    X("suiro_gw_sig_verify_total", COUNTER, "thread",                                                              \
      "Signature verifications of gateway messages, by thread (loop, worker); loop stays 0", c_gwsig)              \
    X("suiro_app_sig_verify_total", COUNTER, "thread",                                                             \
      "Signature verifications of apps' control requests, by thread (loop, worker); loop stays 0", c_appsig)        \
    X("suiro_writer_queue_depth", GAUGE, "operator", "Commands waiting in the writer queue, per operator", c_queue) \
    X("suiro_group_size_commands", HISTOGRAM, NULL, "Commands per group commit of the writer", c_group)            \
    X("suiro_group_commit_seconds", HISTOGRAM, NULL,                                                              \
      "Time of a group commit, from taking the group to the index commit", c_commit)                              \
    X("suiro_fdatasync_seconds", HISTOGRAM, NULL, "Latency of the log's fdatasync", c_fsync)                       \
    X("suiro_log_events_total", COUNTER, NULL, "Events appended to the log since start", c_events)                 \
    X("suiro_cluster_events_total", COUNTER, "state",                                                             \
      "Cluster mode: events published to NATS, acknowledged, published again, publish errors, replicated (another node's: not published), sealed (stream keys), erased (its stream key destroyed: not sent)", c_cluster_events)   \
    X("suiro_cluster_consumed_total", COUNTER, "class",                                                           \
      "Cluster mode: other nodes' events applied from the streams (reg, data), refused by this node's writer (refused), not opened (unsealed: stream keys)", c_cluster_consumed) \
    X("suiro_cluster_duplicates_total", COUNTER, NULL,                                                            \
      "Cluster mode: consumed events whose origin was applied before (nothing done)", c_cluster_dups)            \
    X("suiro_cluster_lag_events", GAUGE, "partition",                                                             \
      "Cluster mode: events a partition's stream held after the last one its consumer fetched", c_cluster_lag)  \
    X("suiro_cluster_confirmed_seq", GAUGE, NULL,                                                                  \
      "Cluster mode: every event up to this seq is acknowledged by JetStream", c_cluster_confirmed)               \
    X("suiro_cluster_pending_events", GAUGE, NULL,                                                                 \
      "Cluster mode: events of the log not yet acknowledged by JetStream", c_cluster_pending)                     \
    X("suiro_cluster_held_answers", GAUGE, NULL,                                                                   \
      "Cluster mode: write answers waiting for a JetStream acknowledgement", c_cluster_held)                      \
    X("suiro_cluster_held_events", GAUGE, NULL,                                                                    \
      "Cluster mode: replicated values logged but held, their data point's mapping not here yet", c_cluster_held_events) \
    X("suiro_cluster_connected", GAUGE, NULL, "Cluster mode: 1 while connected to NATS with the streams checked", \
      c_cluster_connected)                                                                                         \
    X("suiro_cluster_blobs_total", COUNTER, "state",                                                              \
      "Cluster mode: files whose bytes this node published to the blob stream, fetched from it, failed to fetch (a chunk missing, NATS down), refused (did not verify)", c_cluster_blobs) \
    X("suiro_cluster_blobs_pending", GAUGE, NULL,                                                                 \
      "Cluster mode: files indexed here whose bytes are not here yet (as of the fetcher's last walk)", c_cluster_blobs_pending) \
    X("suiro_cluster_owned_partitions", GAUGE, NULL, "Cluster mode: partitions this node owns (holds the lease of)", \
      c_cluster_owned)                                                                                             \
    X("suiro_cluster_ownership_changes_total", COUNTER, "why",                                                    \
      "Cluster mode: ownership changes this node made or found (start, expired, handover, lost)", c_cluster_changes) \
    X("suiro_cluster_nodes_live", GAUGE, NULL, "Cluster mode: live nodes in the owners' bucket, this one included", \
      c_cluster_live)                                                                                              \
    X("suiro_ryw_waits_total", COUNTER, "outcome",                                                                 \
      "Reads with Suiro-Wait: reached at once (at_once), after waiting (waited), timed out, refused (full, not owned)", c_ryw) \
    X("suiro_ryw_waiting", GAUGE, NULL, "Reads with Suiro-Wait waiting now (at most 1024)", c_ryw_waiting)          \
    X("suiro_cluster_forwarded_total", COUNTER, "outcome",                                                        \
      "Cluster mode: requests forwarded to their partition's owner, by outcome (relayed, no_owner, unreachable, timeout, not_owner, error)", \
      c_cluster_fwd)                                                                                               \
    X("suiro_cluster_forward_waits_total", COUNTER, "outcome",                                                    \
      "Cluster mode: forwarded requests that waited for their session, tried again: woken (a session applied), deadline, full (401 at once)", \
      c_cluster_fwd_waits)                                                                                         \
    X("suiro_cluster_forward_served_total", COUNTER, NULL,                                                         \
      "Cluster mode: requests another node forwarded here, served by this node", c_cluster_fwd_served)            \
    X("suiro_cluster_forward_seconds", HISTOGRAM, NULL,                                                            \
      "Cluster mode: latency of the forwarded requests whose answer was relayed (on the forwarding node)", c_cluster_fwd_lat) \
    X("suiro_cluster_relayed_total", COUNTER, NULL,                                                               \
      "Cluster mode: request parts and results relayed between nodes (labels dir, kind, outcome)", c_cluster_relayed) \
    X("suiro_connections", GAUGE, "kind",                                                                          \
      "Open connections (mqtt, mqtts, http) and logged-in gateways and app sessions (gateways, apps)", c_conns)    \
    X("suiro_requests", GAUGE, "state", "Open requests to gateways, by state", c_states)                           \
    X("suiro_monitors", GAUGE, "state", "Monitors, by state", c_states)                                            \
    X("suiro_push_queued", GAUGE, "app", "Pushes waiting for delivery, per operator/app", c_push)                 \
    X("suiro_push_dropped_total", COUNTER, "app", "Pushes dropped by the queue bound, per operator/app", c_push)   \
    X("suiro_lmdb_map_used_bytes", GAUGE, NULL, "Bytes of the index's LMDB map in use", c_map)                     \
    X("suiro_lmdb_map_size_bytes", GAUGE, NULL, "Size of the index's LMDB map", c_map_size)                       \
    X("suiro_log_bytes", GAUGE, NULL, "Bytes of the log's segment files", c_log_bytes)                            \
    X("suiro_blob_bytes", GAUGE, NULL, "Bytes of the blob store's files", c_blob_bytes)                           \
    X("suiro_disk_free_bytes", GAUGE, NULL, "Bytes free for the server on the data directory's file system",      \
      c_disk)                                                                                                      \
    X("suiro_disk_size_bytes", GAUGE, NULL, "Size of the data directory's file system", c_disk)                  \
    X("process_cpu_seconds_total", COUNTER, NULL, "CPU time of the process, user and system", c_cpu)             \
    X("process_resident_memory_bytes", GAUGE, NULL, "Resident memory of the process", c_rss)                     \
    X("suiro_tls_handshake_failures_total", COUNTER, "listener", "TLS handshakes that failed, per listener", c_tls) \
    X("suiro_login_failures_total", COUNTER, "reason",                                                             \
      "Logins refused: a wrong secret or password, or throttled", c_login)                                        \
    X("suiro_ready", GAUGE, NULL, "1 once recovery is done and every listener accepts (as /ready)", c_ready)

typedef struct metric {
    const char *name;
    sr_mtype type;
    const char *label;
    const char *help;
    void (*collect)(scrape *s);
} metric;

static const metric METRICS[] = {
#define SR__M(n, t, l, h, c) {n, SR_MT_##t, l, h, c},
    SR_METRICS(SR__M)
#undef SR__M
};

int sr_metrics_collect(const sr_metrics_src *src, sr_buf *out)
{
    scrape s = {.src = src, .b = out};
    for (size_t i = 0; i < sizeof METRICS / sizeof METRICS[0] && !s.rc; i++) {
        s.rc = sr_mexp_head(out, METRICS[i].name, METRICS[i].type, METRICS[i].help);
        s.name = METRICS[i].name;
        s.label = METRICS[i].label;
        if (!s.rc) METRICS[i].collect(&s);
    }
    return s.rc ? SR_ENOMEM : SR_OK;
}

/* ---- HTTP ------------------------------------------------------------------ */

static struct {
    sr_metrics_src src;
    int have_src;
    char token[256];
    size_t token_len;
    int http_loopback;
} M;

void sr_metrics_set_source(const sr_metrics_src *src, const char *token, int http_loopback)
{
    if (src) M.src = *src;
    M.have_src = src != NULL;
    OPENSSL_cleanse(M.token, sizeof M.token);
    M.token_len = 0;
    if (token && token[0] && strlen(token) < sizeof M.token) {
        M.token_len = strlen(token);
        memcpy(M.token, token, M.token_len);
    }
    M.http_loopback = http_loopback;
}

static void answer_text(h2o_req_t *req, int status, const char *ctype, const void *body, size_t len)
{
    sr_http_send(req, status, ctype, body, len);
}

const char *const sr_metrics_paths[] = {"/metrics", "/health", "/ready"};
const size_t sr_metrics_npaths = sizeof sr_metrics_paths / sizeof sr_metrics_paths[0];

int sr_metrics_http(h2o_req_t *req, int own)
{
    const char *p = req->path_normalized.base;
    size_t n = req->path_normalized.len;
    int which = 0; /* 1 + the index in sr_metrics_paths */
    for (size_t k = 0; k < sr_metrics_npaths && !which; k++)
        if (strlen(sr_metrics_paths[k]) == n && !memcmp(p, sr_metrics_paths[k], n)) which = (int)k + 1;
    if (!which) return 0;
    if (!sr_http_method(req, "GET") && !sr_http_method(req, "HEAD")) {
        sr_http_result(req, 405, SR_WIRE_PARAM, "method not allowed on this path: GET", NULL);
        return 1;
    }
    if (which == 2) {
        answer_text(req, 200, "text/plain; charset=utf-8", "ok\n", 3);
        return 1;
    }
    if (which == 3) {
        int r = sr_metrics_ready();
        if (r) answer_text(req, 200, "text/plain; charset=utf-8", "ready\n", 6);
        else answer_text(req, 503, "text/plain; charset=utf-8", "not ready\n", 10);
        return 1;
    }
    if (!own) {
        if (M.token_len) {
            size_t bl = 0;
            const char *bt = sr_http_bearer(req, &bl);
            if (!bt || bl != M.token_len || CRYPTO_memcmp(bt, M.token, bl)) {
                sr_http_result(req, 401, SR_WIRE_UNAUTH,
                               "not authenticated: /metrics needs Authorization: Bearer <the token of [metrics] "
                               "token_file>",
                               NULL);
                return 1;
            }
        } else if (!M.http_loopback) {
            sr_http_result(req, 403, SR_WIRE_FORBIDDEN,
                           "forbidden: /metrics on a listener that is not loopback needs [metrics] token_file "
                           "(or use [metrics] listen)",
                           NULL);
            return 1;
        }
    }
    sr_buf b;
    sr_buf_init(&b);
    int rc = sr_metrics_collect(M.have_src ? &M.src : &(sr_metrics_src){0}, &b);
    if (rc) sr_http_result(req, 500, SR_WIRE_INTERNAL, "out of memory", NULL);
    else answer_text(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    sr_buf_release(&b);
    return 1;
}

/* ---- the [metrics] listener -------------------------------------------------- */

enum { MCONN_MAX = 64 }; /* scrapers are few: more connections are refused */

struct sr_mlistener {
    uv_tcp_t tcp;
    uv_loop_t *loop;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept;
    int ctx_ready, port, nconns, closing;
    struct mconn *conns;
};

typedef struct mconn {
    uv_tcp_t tcp; /* first: h2o's socket wraps it */
    sr_mlistener *l;
    struct mconn *next, *prev;
} mconn;

static void mconn_closed(uv_handle_t *h)
{
    mconn *c = (mconn *)h;
    sr_mlistener *l = c->l;
    if (c->prev) c->prev->next = c->next;
    else if (l->conns == c) l->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    l->nconns--;
    free(c);
}

static void mon_accept(uv_stream_t *ls, int status)
{
    sr_mlistener *l = ls->data;
    if (status) return;
    mconn *c = calloc(1, sizeof *c);
    if (!c) return;
    c->l = l;
    c->next = l->conns;
    if (l->conns) l->conns->prev = c;
    l->conns = c;
    uv_tcp_init(l->loop, &c->tcp);
    c->tcp.data = l; /* non-NULL: not an MQTT connection (server.c close_walk); h2o replaces it */
    l->nconns++;
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) || l->nconns > MCONN_MAX) {
        uv_close((uv_handle_t *)&c->tcp, mconn_closed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, mconn_closed);
    h2o_accept(&l->accept, sock);
}

static int mon_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    if (sr_http_check_request(req)) return 0;
    if (!sr_metrics_http(req, 1)) sr_http_result(req, 404, SR_WIRE_UNKNOWN, "unknown path: /metrics, /health, /ready", NULL);
    return 0;
}

int sr_mlistener_open(uv_loop_t *loop, const char *host, int port, sr_mlistener **out, char *err, size_t errlen)
{
    sr_mlistener *l = calloc(1, sizeof *l);
    *out = l;
    if (!l) return SR_ENOMEM;
    l->loop = loop;
    h2o_config_init(&l->config);
    l->config.http1.upgrade_to_http2 = 0;
    l->config.http1.req_timeout = 10000;
    l->config.max_request_entity_size = 4096;
    h2o_hostconf_t *hc = h2o_config_register_host(&l->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pc = h2o_config_register_path(hc, "/", 0);
    h2o_handler_t *h = h2o_create_handler(pc, sizeof *h);
    h->on_req = mon_req;
    h2o_context_init(&l->ctx, loop, &l->config);
    l->ctx_ready = 1;
    l->accept.ctx = &l->ctx;
    l->accept.hosts = l->config.hosts;
    struct sockaddr_storage addr;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) && uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr)) {
        snprintf(err, errlen, "[metrics] listen: '%s' is not an IP address", host);
        return SR_EINVAL;
    }
    uv_tcp_init(loop, &l->tcp);
    l->tcp.data = l;
    int r = uv_tcp_bind(&l->tcp, (struct sockaddr *)&addr, 0);
    if (!r) r = uv_listen((uv_stream_t *)&l->tcp, 64, mon_accept);
    if (r) {
        snprintf(err, errlen, "[metrics] listen %s:%d: %s", host, port, uv_strerror(r));
        return SR_EIO;
    }
    struct sockaddr_storage b;
    int bl = sizeof b;
    uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&b, &bl);
    l->port = ntohs(b.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&b)->sin6_port
                                            : ((struct sockaddr_in *)&b)->sin_port);
    return SR_OK;
}

int sr_mlistener_port(const sr_mlistener *l) { return l ? l->port : 0; }

void sr_mlistener_stop(sr_mlistener *l)
{
    if (!l || l->closing) return;
    l->closing = 1;
    if (l->tcp.loop && !uv_is_closing((uv_handle_t *)&l->tcp)) uv_close((uv_handle_t *)&l->tcp, NULL);
}

static void on_wake(uv_timer_t *t) { (void)t; }

/* as sr_gwhttp_dispose: the scrapers' keep-alive connections are ended
 * (shutdown: h2o sees the end and closes them), a bounded wait, then h2o's
 * context goes; one still open leaves it to the exit */
void sr_mlistener_dispose(sr_mlistener *l)
{
    if (!l) return;
    sr_mlistener_stop(l);
    if (l->ctx_ready <= 0) return;
    for (mconn *c = l->conns; c; c = c->next) {
        uv_os_fd_t fd;
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) shutdown(fd, SHUT_RDWR);
    }
    uv_timer_t wake;
    uv_timer_init(l->loop, &wake);
    uv_timer_start(&wake, on_wake, 50, 50);
    uv_update_time(l->loop);
    uint64_t deadline = uv_now(l->loop) + 2000;
    while (l->nconns && uv_now(l->loop) < deadline) uv_run(l->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&wake, NULL);
    uv_run(l->loop, UV_RUN_NOWAIT);
    if (l->nconns) {
        sr_slog(SR_LOG_WARN, "metrics connections still open at exit", "count=%d", l->nconns);
        l->ctx_ready = -1;
        return;
    }
    if (h2o_timeout_is_linked(&l->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&l->ctx.http2._graceful_shutdown_timeout);
    h2o_context_dispose(&l->ctx);
    l->ctx_ready = 0;
}

void sr_mlistener_free(sr_mlistener *l)
{
    if (!l) return;
    sr_mlistener_dispose(l);
    if (l->ctx_ready < 0) return; /* see sr_mlistener_dispose */
    h2o_config_dispose(&l->config);
    free(l);
}
