/*
 * api/curlloop.h -- libcurl's multi interface on the libuv loop, and the
 * signed POST, shared by the pushes to apps (api/push.c) and the alarm
 * notifications (api/notify.c). Factored out of push.c: one copy.
 *
 * A curlloop owns one CURLM driven by the loop: curl says which sockets to
 * watch (one uv_poll per socket, tied to it by curl_multi_assign) and when to
 * call it back (one uv_timer); readiness and timeouts go back through
 * curl_multi_socket_action, and each finished transfer is handed to the
 * owner's done callback with its priv pointer, after the easy handle was
 * removed and cleaned up (the owner frees what it gave the handle: headers,
 * body). libcurl's global state is reference-counted across curlloops.
 *
 * INVARIANTS
 *  (1) Each libcurl socket has exactly one uv_poll handle (the psock that
 *      curl_multi_assign ties to it), closed when curl says CURL_POLL_REMOVE
 *      or at dispose; the socket list is a proper doubly linked list.
 *  (2) After dispose no socket is left and nothing calls back.
 * sr_curlloop_check returns NULL or names the broken one.
 *
 * Every function is called on the loop's thread.
 */
#ifndef SR_CURLLOOP_H
#define SR_CURLLOOP_H

#include "storage/crypto.h"

#include <curl/curl.h>
#include <stddef.h>
#include <uv.h>

typedef struct sr_curlloop sr_curlloop;

/* A transfer ended: res curl's result, code the response code (HTTP; SMTP:
 * the last reply's), errbuf what the owner set as CURLOPT_ERRORBUFFER. */
typedef void (*sr_curl_done_fn)(void *priv, CURLcode res, long code);

/* who names the owner in err ("push", "notify"). */
SR_MUST_CHECK int sr_curlloop_open(uv_loop_t *loop, sr_curl_done_fn done, const char *who, sr_curlloop **out,
                                   char *err, size_t errlen);
/* Start transfer e (its options set); done(priv, ...) once it ends. On
 * failure e is cleaned up and nonzero returned (no callback). */
SR_MUST_CHECK int sr_curlloop_add(sr_curlloop *cl, CURL *e, void *priv);
/* Abort e (dispose): removed and cleaned up, no callback. */
void sr_curlloop_abort(sr_curlloop *cl, CURL *e);
/* Close the multi handle, its sockets and the timer; nothing calls back
 * afterwards. Free after the loop ran the close callbacks. */
void sr_curlloop_dispose(sr_curlloop *cl);
void sr_curlloop_free(sr_curlloop *cl);
const char *sr_curlloop_check(const sr_curlloop *cl);

/* ---- the signed POST (pushes and webhooks) --------------------------------
 * The platform key (DATA_DIR/platform-key.pem; ES256, ES384, PS256, EdDSA),
 * who names the owner in err. */
SR_MUST_CHECK int sr_platform_key_load(const char *data_dir, const char *who, sr_sigkey **out, char *err,
                                       size_t errlen);
/* The signature of body, base64url (malloc'd into *sig), as JWS has it. */
SR_MUST_CHECK int sr_sign_body(sr_sigkey *key, const char *body, size_t len, char **sig);
/* The headers of a signed JSON POST: Content-Type, X-Suiro-Signature
 * ("ALG;keyId=platform;sig=SIG"), X-Suiro-Signature-Alg, id_header: id, and
 * no Expect. NULL when out of memory. */
struct curl_slist *sr_signed_headers(sr_sigkey *key, const char *sig, const char *id_header, const char *id);
/* An easy handle POSTing body (not copied: it must outlive the transfer)
 * with hdrs to url over http or https only, with the timeouts, errbuf
 * (CURL_ERROR_SIZE) and the user agent. NULL when out of memory. */
CURL *sr_post_easy(const char *url, const char *body, size_t len, struct curl_slist *hdrs, long connect_timeout_ms,
                   long timeout_ms, char *errbuf, const char *agent);

#endif
