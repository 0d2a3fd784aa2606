/*
 * api/metrics.h -- the server's metrics (Prometheus text exposition format
 * 0.0.4), /health and /ready (issue #17, R-MO-2; docs/monitoring.md
 * "Metrics and health").
 *
 * SR_METRICS below is the one table of metrics: a row per metric (its
 * name, type, label, help and the collector that writes its samples at a
 * scrape). A new metric is a row and, when its number is not read at
 * scrape time from where it lives already, a counter bumped where the
 * event happens.
 *
 * COST (the hot paths)
 *  The counters api/ bumps (ingested values and messages per operator,
 *  refusals by wire code, connections, TLS handshake and login failures)
 *  are relaxed atomics (<stdatomic.h>, memory_order_relaxed): no lock, no
 *  allocation, a few instructions per message. An operator's counters are a
 *  slot of a fixed table found by the one string hash (sr_hash) when a
 *  message completes. The engine's (group size, group commit time,
 *  fdatasync latency) are sr_hist (codecs/base/sr_hist.h), bumped once per
 *  group. Everything else (queue depths, LMDB map use, log and blob bytes,
 *  disk free, CPU, RSS, sessions, requests and monitors, push queues) is
 *  read when scraped.
 *
 * CARDINALITY
 *  Labels are bounded: operator and app ids are configured by
 *  administrators, not chosen by whoever connects; the operator table
 *  holds SR_METRICS_OPS operators, a further one counts under operator
 *  "_other". Codes, kinds and states are fixed lists. Label values are
 *  escaped as the format says (backslash, double quote, newline).
 *
 * ACCESS ([metrics], docs/configuration.md)
 *  `listen`: a listener of its own, no authentication (meant for loopback);
 *  on the [http] listener /metrics needs `Authorization: Bearer <token>`
 *  with the token of `token_file` (compared in constant time), or, with no
 *  token_file, is answered only when that listener is bound to loopback.
 *  /health and /ready are open on both. /health: 200 while the process
 *  serves; /ready: 200 once recovery is done and every listener accepts
 *  (sr_metrics_set_ready), 503 before and once stopping.
 */
#ifndef SR_METRICS_H
#define SR_METRICS_H

#include "api/wire.h"
#include "codecs/base/sr_alloc.h"
#include "codecs/base/sr_hist.h"

#include <stddef.h>
#include <stdint.h>

struct st_h2o_req_t;
struct sr_engine;
struct sr_push;
struct sr_broker;
struct sr_gwhttp;
struct uv_loop_s;

enum { SR_METRICS_OPS = 256 };

/* ---- the counters api/ bumps (any thread; relaxed atomics) --------------- */
typedef enum { SR_MCONN_MQTT, SR_MCONN_MQTTS, SR_MCONN__N } sr_mconn;
/* an MQTT connection opened (+1) or closed (-1) on a listener */
void sr_metrics_conn(sr_mconn kind, int delta);
/* an MQTT connection's login passed (+1), or a logged-in one closed (-1) */
void sr_metrics_gateway_mqtt(int delta);
typedef enum { SR_MTLS_MQTTS, SR_MTLS_HTTPS, SR_MTLS__N } sr_mtls;
void sr_metrics_tls_failed(sr_mtls where);
typedef enum { SR_MLOGIN_WRONG, SR_MLOGIN_THROTTLED, SR_MLOGIN__N } sr_mlogin;
void sr_metrics_login_failed(sr_mlogin why);
/* A gateway's message refused with code (not OK): counted under its code. */
void sr_metrics_refused(sr_wire code);
/* A GW-IF message's signature was verified (any verdict) on the network
 * loop's thread (on_loop) or off it (the worker queue): docs/signatures.md
 * "Cost" -- the loop's count stays 0. */
void sr_metrics_gw_sig_verify(int on_loop);
/* the same for an app's control request (suiro_app_sig_verify_total) */
void sr_metrics_app_sig_verify(int on_loop);
/* op's slot (0 .. SR_METRICS_OPS; the last is "_other"); find once, bump often */
unsigned sr_metrics_op(const char *op);
/* a values message of the slot's operator was stored durably with n values */
void sr_metrics_ingested(unsigned slot, uint64_t nvalues);

/* ---- scraping ----------------------------------------------------------- */
/* What a scrape reads (the server's; any may be NULL). */
typedef struct sr_metrics_src {
    struct sr_engine *eng;
    struct sr_push *push;
    struct sr_broker *broker;
    struct sr_gwhttp *http;
    const char *data_dir;
} sr_metrics_src;

/* Every metric of the table into out (appended). SR_OK or SR_ENOMEM. */
int sr_metrics_collect(const sr_metrics_src *src, sr_buf *out);

/* The exposition writer (pure; tests/api/test_metrics.c). */
typedef enum { SR_MT_COUNTER, SR_MT_GAUGE, SR_MT_HISTOGRAM } sr_mtype;
/* "# HELP name help" (backslash and newline escaped) and "# TYPE name type" */
int sr_mexp_head(sr_buf *b, const char *name, sr_mtype type, const char *help);
/* one sample: name[suffix]{label="value"} v (label NULL: none); value is
 * escaped; a double is written in the shortest form that reads back */
int sr_mexp_u64(sr_buf *b, const char *name, const char *label, const char *value, uint64_t v);
int sr_mexp_f64(sr_buf *b, const char *name, const char *label, const char *value, double v);
/* a histogram's _bucket{le=...} (cumulative, +Inf last), _sum, _count;
 * bounds[i] * scale is the le of bucket i (microseconds to seconds: 1e-6),
 * the sum is scaled too */
int sr_mexp_hist(sr_buf *b, const char *name, const char *label, const char *value, const uint64_t *bounds,
                 size_t nb, double scale, const sr_hist_snap *h);
/* a label value escaped (\\, \", \n) */
int sr_mexp_escape(sr_buf *b, const char *v);

/* ---- HTTP ---------------------------------------------------------------- */
/* The server's readiness (sr_server_ready_hook sets it): 0 before recovery
 * ended and every listener accepts, 1 then, 0 again once stopping. */
void sr_metrics_set_ready(int ready);
int sr_metrics_ready(void);
/* The source scrapes read (the server's; set once the server is open, NULL
 * first thing at its close, before anything in it goes: one server per
 * process, as `suiro serve` runs) and the token of [metrics] token_file (NULL or "": none), and
 * whether the [http] listener is on loopback. */
void sr_metrics_set_source(const sr_metrics_src *src, const char *token, int http_loopback);
/* The paths sr_metrics_http answers (GET; HEAD too), outside the bindings'
 * route tables (api/routes.h: those are under /api/v1, /gw/v1, /admin/v1):
 * `suiro routes` prints them and the OpenAPI checks read them with the
 * tables' rows. */
extern const char *const sr_metrics_paths[];
extern const size_t sr_metrics_npaths;
/* /metrics, /health, /ready: 1 if req is one of them (answered), 0 if not.
 * own: the request came in on the [metrics] listener (no token asked). */
int sr_metrics_http(struct st_h2o_req_t *req, int own);

/* The [metrics] listener: host:port (port 0: a free one) on the loop. */
typedef struct sr_mlistener sr_mlistener;
int sr_mlistener_open(struct uv_loop_s *loop, const char *host, int port, sr_mlistener **out, char *err,
                      size_t errlen);
int sr_mlistener_port(const sr_mlistener *l);
void sr_mlistener_stop(sr_mlistener *l);    /* closes the listener (the loop runs the close) */
void sr_mlistener_dispose(sr_mlistener *l); /* before the loop is walked: h2o's context */
void sr_mlistener_free(sr_mlistener *l);

#endif
