/*
 * api/notify.h -- alarm notifications (issue #17, R-MO-3; docs/monitoring.md
 * "Notifications").
 *
 * Each operator has notification targets (registry entries SR_RG_NOTIFY): a
 * webhook URL or one mail address, and the lowest alarm level it is told
 * of. Every alarm step (an AlarmEvent: raised, acknowledged, resolved) of
 * the operator at or above a target's level is one DELIVERY to that
 * target, whose id is "<alarm seq>-<target id>":
 *   webhook  POST {url} with a JSON body, signed with the platform key like
 *            the pushes (X-Suiro-Signature, X-Suiro-Signature-Alg), and
 *            X-Suiro-Delivery-Id: the delivery id; delivered on 2xx
 *   mail     an RFC 5322 message over SMTP ([notify] smtp_url, libcurl) to
 *            the one address, its Message-ID <suiro.ID.OP@from-domain> and
 *            X-Suiro-Delivery-Id; delivered once the server took it (250).
 *            The address's domain must be in [notify] mail_allowed_domains
 *            at creation and again at every attempt
 * A failed attempt is retried after retry_first_ms, doubling up to
 * retry_max_ms, until retry_max_age_s after the alarm step: then the
 * delivery is given up (a NotifyEvent given_up and a warning line; never a
 * notification of its own).
 *
 * DURABILITY AND "NEVER SENT TWICE" (docs/monitoring.md states it for
 * users): a delivery's outcome (delivered, given_up) is a NotifyEvent,
 * written after the receiver's 2xx/250; the notifier's mark (a NotifyEvent
 * mark, the `notifyq` index) says every delivery of every alarm step at or
 * below it is done. At start sr_notify_recover derives again, from the log,
 * the deliveries of the alarm steps after the mark and drops those whose
 * outcome is stored. So a delivery is sent again only when the process died
 * after the receiver accepted it and before its outcome was durable -- with
 * the SAME delivery id, body and Message-ID, so the receiver can drop the
 * copy. Exactly-once to an outside system is impossible (the receiver's
 * acceptance and our record of it cannot be one atomic step); what we
 * guarantee is at-least-once with a stable id, and never twice once the
 * outcome is durable.
 *
 * Every function is called on the loop's thread.
 */
#ifndef SR_NOTIFY_H
#define SR_NOTIFY_H

#include "engine/records.h"
#include "engine/suiro.h"

#include <stdint.h>
#include <uv.h>

typedef struct sr_notify sr_notify;

/* [notify] (api/config.h; docs/configuration.md). Strings borrowed: they
 * outlive the notifier (the server's config). */
typedef struct sr_notify_opts {
    const char *smtp_url, *mail_from, *mail_domains, *starttls, *smtp_user, *smtp_password_env;
    int allow_http;
    uint32_t retry_first_ms, retry_max_ms, retry_max_age_s, timeout_ms;
    uint32_t mark_every_ms; /* the mark: at most one write this often (0: 1000) */
} sr_notify_opts;

/* A target's URL as stored: "https://...", "http://..." or "mailto:ADDR".
 * SR_OK if o allows it now (scheme, loopback http unless allow_http, one
 * mail address of an allowed domain, mail configured), else SR_EINVAL and
 * why names the problem. */
SR_MUST_CHECK int sr_notify_target_ok(const sr_notify_opts *o, const char *url, char *why, size_t whylen);
/* The same for a target of operator op: a mail domain must also be in the
 * operator's own, narrower list when it has one (SR_NOTIFY_DOMAINS_ID). */
SR_MUST_CHECK int sr_notify_target_ok_op(sr_engine *eng, const sr_notify_opts *o, const char *op, const char *url,
                                         char *why, size_t whylen);
/* An operator's own list of mail domains (a subset of the platform's): the
 * registry entry SR_RG_NOTIFY of this id (not an ID a target can have),
 * pattern the domains, comma-separated. */
#define SR_NOTIFY_DOMAINS_ID "*mail-domains"
/* 1 if dom is in the comma-separated list (exact, case-insensitive). */
int sr_notify_domain_in(const char *list, const char *dom);
/* Alarm levels by name: warning 1, minor 2, major 3; 0 for anything else. */
int sr_notify_level(const char *name);

/* Open on loop: the platform key (DATA_DIR/platform-key.pem) and libcurl. */
SR_MUST_CHECK int sr_notify_open(uv_loop_t *loop, sr_engine *eng, const char *data_dir, const sr_notify_opts *o,
                                 sr_notify **out, char *err, size_t errlen);
/* At start, before anything is served: register for new alarm steps, derive
 * the deliveries of the steps after the mark from the log, queue those not
 * done; the first start of a data directory (no mark) writes one at the end
 * of the log and sends nothing older. */
SR_MUST_CHECK int sr_notify_recover(sr_notify *n, size_t *pending);

typedef struct sr_notify_counts {
    uint64_t delivered, retried, given_up, queued;
} sr_notify_counts;
void sr_notify_stats(const sr_notify *n, sr_notify_counts *out);

/* Stop: transfers aborted, the mark written, the hook removed; call before
 * the engine closes. Free after the loop ran the close callbacks and the
 * engine closed. NULL is a no-op. */
void sr_notify_dispose(sr_notify *n);
void sr_notify_free(sr_notify *n);
/* NULL when the deliveries' states agree (notify.c INVARIANTS), else what not. */
const char *sr_notify_check(const sr_notify *n);

#endif
