/*
 * api/curlloop.c -- libcurl's multi interface on the libuv loop, and the
 * signed POST (see curlloop.h). Moved here from api/push.c so that the
 * pushes and the notifications share one copy.
 */
#include "api/curlloop.h"

#include "codecs/base/sr_alloc.h"
#include "codecs/base/sr_error.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SIG_B64_LEN = (4 * SR_SIG_MAX_LEN + 2) / 3 }; /* base64url of the longest signature, no padding */

typedef struct psock {
    uv_poll_t h;
    curl_socket_t fd;
    sr_curlloop *cl;
    struct psock *next, *prev;
} psock;

struct sr_curlloop {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer; /* libcurl's */
    psock *socks;
    sr_curl_done_fn done;
    int closed;
};

/* ---- libcurl's global state, shared by every curlloop of the process ---- */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_users;

static int curl_global_ref(void)
{
    int rc = SR_OK;
    pthread_mutex_lock(&g_mu);
    if (g_users == 0 && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) rc = SR_EIO;
    if (!rc) g_users++;
    pthread_mutex_unlock(&g_mu);
    return rc;
}

static void curl_global_unref(void)
{
    pthread_mutex_lock(&g_mu);
    if (--g_users == 0) curl_global_cleanup();
    pthread_mutex_unlock(&g_mu);
}

/* ---- transfers ------------------------------------------------------------ */

static void check_done(sr_curlloop *cl)
{
    CURLMsg *cm;
    int left;
    while ((cm = curl_multi_info_read(cl->multi, &left))) {
        if (cm->msg != CURLMSG_DONE) continue;
        CURL *e = cm->easy_handle;
        CURLcode res = cm->data.result; /* cm is invalid once the handle is removed */
        char *priv = NULL;
        long code = 0;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
        curl_multi_remove_handle(cl->multi, e);
        curl_easy_cleanup(e);
        if (priv) cl->done(priv, res, code);
    }
}

static void on_psock_closed(uv_handle_t *h) { free(h->data); }

const char *sr_curlloop_check(const sr_curlloop *cl)
{
    if (!cl) return "NULL curlloop";
    for (const psock *s = cl->socks; s; s = s->next)
        if (s->cl != cl || (s->prev ? s->prev->next : cl->socks) != s) return "(1) the socket list's links do not agree";
    if (cl->closed && cl->socks) return "(2) a socket left after dispose";
    return NULL;
}

static void psock_close(psock *s)
{
    sr_curlloop *cl = s->cl;
    if (s->prev) s->prev->next = s->next;
    else cl->socks = s->next;
    if (s->next) s->next->prev = s->prev;
    uv_poll_stop(&s->h);
    uv_close((uv_handle_t *)&s->h, on_psock_closed);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    psock *s = h->data;
    sr_curlloop *cl = s->cl;
    int flags = 0, running;
    if (status < 0) flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(cl->multi, s->fd, flags, &running); /* may close s (freed later) */
    check_done(cl);
}

static int on_curl_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)e;
    sr_curlloop *cl = userp;
    psock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            curl_multi_assign(cl->multi, fd, NULL);
            psock_close(s);
            SR_INVARIANT(sr_curlloop_check(cl));
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) return -1;
        if (uv_poll_init_socket(cl->loop, &s->h, fd)) {
            free(s);
            return -1;
        }
        s->fd = fd;
        s->cl = cl;
        s->h.data = s;
        s->next = cl->socks;
        if (cl->socks) cl->socks->prev = s;
        cl->socks = s;
        curl_multi_assign(cl->multi, fd, s); /* (1) */
        SR_INVARIANT(sr_curlloop_check(cl));
    }
    int ev = 0;
    if (what & CURL_POLL_IN) ev |= UV_READABLE;
    if (what & CURL_POLL_OUT) ev |= UV_WRITABLE;
    uv_poll_start(&s->h, ev, on_poll);
    return 0;
}

static void on_uv_timeout(uv_timer_t *t)
{
    sr_curlloop *cl = t->data;
    int running;
    curl_multi_socket_action(cl->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(cl);
}

static int on_curl_timer(CURLM *m, long timeout_ms, void *userp)
{
    (void)m;
    sr_curlloop *cl = userp;
    if (timeout_ms < 0) uv_timer_stop(&cl->timer);
    else uv_timer_start(&cl->timer, on_uv_timeout, (uint64_t)timeout_ms, 0); /* 0: on the next turn of the loop */
    return 0;
}

int sr_curlloop_open(uv_loop_t *loop, sr_curl_done_fn done, const char *who, sr_curlloop **out, char *err,
                     size_t errlen)
{
    sr_curlloop *cl = calloc(1, sizeof *cl);
    if (!cl) return SR_ENOMEM;
    if (curl_global_ref()) {
        snprintf(err, errlen, "%s: libcurl did not initialise", who);
        free(cl);
        return SR_EIO;
    }
    if (!(cl->multi = curl_multi_init())) {
        curl_global_unref();
        snprintf(err, errlen, "%s: curl_multi_init failed", who);
        free(cl);
        return SR_ENOMEM;
    }
    cl->loop = loop;
    cl->done = done;
    curl_multi_setopt(cl->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(cl->multi, CURLMOPT_SOCKETDATA, cl);
    curl_multi_setopt(cl->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(cl->multi, CURLMOPT_TIMERDATA, cl);
    uv_timer_init(loop, &cl->timer);
    cl->timer.data = cl;
    *out = cl;
    return SR_OK;
}

int sr_curlloop_add(sr_curlloop *cl, CURL *e, void *priv)
{
    curl_easy_setopt(e, CURLOPT_PRIVATE, priv);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    if (cl->closed || curl_multi_add_handle(cl->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        return SR_EIO;
    }
    return SR_OK;
}

void sr_curlloop_abort(sr_curlloop *cl, CURL *e)
{
    if (cl->multi) curl_multi_remove_handle(cl->multi, e);
    curl_easy_cleanup(e);
}

void sr_curlloop_dispose(sr_curlloop *cl)
{
    if (!cl || cl->closed) return;
    cl->closed = 1;
    curl_multi_cleanup(cl->multi); /* closes the cached connections (CURL_POLL_REMOVE) */
    cl->multi = NULL;
    while (cl->socks) psock_close(cl->socks); /* whatever curl did not say goodbye to (1) */
    uv_timer_stop(&cl->timer);
    uv_close((uv_handle_t *)&cl->timer, NULL);
    SR_INVARIANT(sr_curlloop_check(cl));
}

void sr_curlloop_free(sr_curlloop *cl)
{
    if (!cl) return;
    if (cl->multi) { /* never disposed: only safe if the loop never ran a transfer */
        curl_multi_cleanup(cl->multi);
        cl->multi = NULL;
    }
    curl_global_unref();
    free(cl);
}

/* ---- the signed POST ------------------------------------------------------ */

int sr_platform_key_load(const char *data_dir, const char *who, sr_sigkey **out, char *err, size_t errlen)
{
    char path[1100], why[1300];
    snprintf(path, sizeof path, "%s/platform-key.pem", data_dir);
    int rc = sr_sigkey_load(path, 1, out, why, sizeof why);
    if (rc) snprintf(err, errlen, "%s: %s", who, why);
    return rc;
}

/* The platform key's algorithm (ES256 unless the key is another of the
 * table's: ES384, PS256, EdDSA) over the body, as JWS has it (ES256: raw
 * r||s, 64 bytes), base64url */
int sr_sign_body(sr_sigkey *key, const char *body, size_t len, char **out)
{
    uint8_t raw[SR_SIG_MAX_LEN];
    size_t n = 0;
    int rc = sr_sigkey_sign(key, body, len, raw, &n); /* storage/crypto.c: the one signer */
    if (rc) return rc;
    if (!(*out = malloc(SIG_B64_LEN + 1))) return SR_ENOMEM;
    sr_base64(raw, n, *out, 1);
    return SR_OK;
}

struct curl_slist *sr_signed_headers(sr_sigkey *key, const char *sig, const char *id_header, const char *id)
{
    char h[SIG_B64_LEN + 200];
    const char *alg = sr_alg_name(sr_sigkey_alg(key));
    struct curl_slist *l = curl_slist_append(NULL, "Content-Type: application/json"), *t;
    snprintf(h, sizeof h, "X-Suiro-Signature: %s;keyId=platform;sig=%s", alg, sig);
    if (l && !(t = curl_slist_append(l, h))) goto fail;
    snprintf(h, sizeof h, "X-Suiro-Signature-Alg: %s", alg); /* (ext) */
    if (l && !(t = curl_slist_append(l, h))) goto fail;
    snprintf(h, sizeof h, "%s: %s", id_header, id);
    if (l && !(t = curl_slist_append(l, h))) goto fail;
    if (l && !(t = curl_slist_append(l, "Expect:"))) goto fail; /* no 100-continue round trip */
    return l;
fail:
    curl_slist_free_all(l);
    return NULL;
}

static size_t discard(char *ptr, size_t size, size_t n, void *ud)
{
    (void)ptr;
    (void)ud;
    return size * n;
}

CURL *sr_post_easy(const char *url, const char *body, size_t len, struct curl_slist *hdrs, long connect_timeout_ms,
                   long timeout_ms, char *errbuf, const char *agent)
{
    CURL *e = curl_easy_init();
    if (!e) return NULL;
    errbuf[0] = 0;
    curl_easy_setopt(e, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85 */
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body); /* not copied */
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_USERAGENT, agent);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    return e;
}
