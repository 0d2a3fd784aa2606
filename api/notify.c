/*
 * api/notify.c -- alarm notifications (see notify.h, docs/monitoring.md
 * "Notifications").
 *
 * The notifier learns of alarm steps from the engine's alarm hook (writer
 * thread: the seq goes into a list, a uv_async wakes the loop) and, at
 * start, from the log after its mark (sr_notify_recover). For each step it
 * reads the event from the log (sr_engine_log_each from its seq, stopping at
 * once), lists the operator's targets (registry SR_RG_NOTIFY) and makes one
 * delivery per matching target that is neither done (`notifyq`) nor queued.
 * Deliveries are independent: each has its own transfer and back-off timer,
 * all on one libcurl multi handle on the loop (api/curlloop.c, shared with
 * the pushes).
 *
 * DELIVERY STATES
 *   sending   its transfer is in flight (d->easy)
 *   waiting   the last attempt failed; the back-off timer runs (d->waiting)
 *   sending -> gone      2xx / 250: a NotifyEvent delivered is submitted
 *   sending -> waiting   a failure younger than retry_max_age_s
 *   sending -> gone      a failure older: a NotifyEvent given_up
 *   waiting -> sending   the timer fired (the target is checked again: a
 *                        mail domain no longer allowed, or a target
 *                        deleted, gives the delivery up, unsent)
 * INVARIANTS
 *  (1) A delivery keeps its id, body (and signature) on every attempt; the
 *      id is "<seq>-<target>", so the same after a restart.
 *  (2) At most one delivery per (seq, operator, target) in memory; none for
 *      one whose outcome `notifyq` holds (checked when it is made).
 *  (3) A delivery is sending xor waiting until dispose; after it nothing.
 *  (4) The mark written (mark_sent) never passes a delivery still held:
 *      mark_sent < the lowest held seq; it only grows.
 * sr_notify_check names the broken one; SR_INVARIANT runs it at each
 * transition.
 */
#include "api/notify.h"

#include "api/curlloop.h"
#include "api/httpu.h"
#include "api/slog.h"
#include "codecs/rfc3339.h"
#include "storage/crypto.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

typedef struct ndel {
    struct ndel *next;
    sr_notify *n;
    uint64_t seq;         /* the alarm step */
    int64_t born_ms;      /* its ingest time: the give-up age counts from it */
    char op[72], target[72];
    char id[160];         /* (1) "<seq>-<target>" */
    int mail;
    char *url;            /* the target's url ("mailto:..." for mail) */
    char *body;           /* JSON (webhook) or the whole message (mail), the same bytes on every attempt */
    size_t len, off;      /* off: the mail's read position in the current attempt */
    char *sig;            /* webhook: made at the first attempt (1) */
    uint32_t attempts, backoff_ms;
    CURL *easy;
    struct curl_slist *hdrs; /* webhook headers or the mail's one recipient */
    uv_timer_t retry;
    int waiting;
    char errbuf[CURL_ERROR_SIZE];
} ndel;

struct sr_notify {
    uv_loop_t *loop;
    sr_engine *eng;
    sr_notify_opts o;
    sr_sigkey *key;
    sr_curlloop *cl;
    ndel *dels;
    size_t ndels;
    uint64_t seen;        /* the highest alarm seq handled (or the recovery's end) */
    uint64_t mark_sent, mark_at;
    atomic_int mark_busy;
    uv_timer_t markt;
    uv_async_t wake;      /* the alarm hook's */
    pthread_mutex_t mu;   /* the hook's list, and hook_off */
    int hook_off;         /* dispose began: the hook sends nothing more to the loop */
    uint64_t *hseq;
    size_t nh, caph;
    int recovered, closed;
    uint64_t delivered, retried, given_up;
    char from_domain[256];
};

static uint64_t mono_ms(void) { return uv_hrtime() / 1000000; }

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------ */
/* Targets                                                                    */

int sr_notify_level(const char *s)
{
    return !strcmp(s, "warning") ? SR_AL_WARNING : !strcmp(s, "minor") ? SR_AL_MINOR : !strcmp(s, "major") ? SR_AL_MAJOR : 0;
}

static const char *level_name(int l)
{
    return l == SR_AL_WARNING ? "warning" : l == SR_AL_MINOR ? "minor" : l == SR_AL_MAJOR ? "major" : "unknown";
}

static const char *level_ja(int l)
{
    return l == SR_AL_WARNING ? "警告" : l == SR_AL_MINOR ? "軽故障" : l == SR_AL_MAJOR ? "重故障" : "不明";
}

static const char *state_ja(const char *s)
{
    return !strcmp(s, "raised") ? "発生" : !strcmp(s, "acknowledged") ? "確認" : !strcmp(s, "resolved") ? "復旧" : s;
}

/* One address, addr-spec of dot-atoms only (no quoting, no comments, no
 * list): local@domain. The domain's start into *dom. */
static int mail_ok(const char *a, const char **dom)
{
    static const char *specials = "!#$%&'*+/=?^_`{|}~-.";
    const char *at = strchr(a, '@');
    if (!at || at == a || strchr(at + 1, '@') || strlen(a) > 254) return 0;
    for (const char *p = a; p < at; p++)
        if (!isalnum((unsigned char)*p) && !strchr(specials, *p)) return 0;
    if (a[0] == '.' || at[-1] == '.' || strstr(a, "..")) return 0;
    const char *d = at + 1;
    size_t lab = 0;
    for (const char *p = d;; p++) {
        if (*p == '.' || !*p) {
            if (!lab || p[-1] == '-') return 0;
            if (!*p) break;
            lab = 0;
        } else if (isalnum((unsigned char)*p) || (*p == '-' && lab)) lab++;
        else return 0;
    }
    if (!strchr(d, '.')) return 0;
    *dom = d;
    return 1;
}

int sr_notify_domain_in(const char *list, const char *dom)
{
    size_t dl = strlen(dom);
    for (const char *p = list; *p;) {
        while (*p == ',' || *p == ' ') p++;
        const char *e = p;
        while (*e && *e != ',') e++;
        const char *t = e;
        while (t > p && t[-1] == ' ') t--;
        if ((size_t)(t - p) == dl && dl && !strncasecmp(p, dom, dl)) return 1;
        p = e;
    }
    return 0;
}

/* the host of an http(s) URL is a loopback address */
static int loopback_host(const char *url)
{
    const char *h = strstr(url, "://");
    if (!h) return 0;
    h += 3;
    char host[256];
    size_t n = 0;
    if (*h == '[') {
        h++;
        while (*h && *h != ']' && n < sizeof host - 1) host[n++] = *h++;
    } else
        while (*h && *h != ':' && *h != '/' && *h != '?' && *h != '#' && n < sizeof host - 1) host[n++] = *h++;
    host[n] = 0;
    if (!strcasecmp(host, "localhost")) return 1;
    unsigned char b[16];
    if (inet_pton(AF_INET, host, b) == 1) return b[0] == 127;
    if (inet_pton(AF_INET6, host, b) == 1) return !memcmp(b, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16);
    return 0;
}

int sr_notify_target_ok(const sr_notify_opts *o, const char *url, char *why, size_t whylen)
{
    if (strpbrk(url, " \t\r\n<>,;\"")) {
        snprintf(why, whylen, "a target is one webhook URL or one mail address (no spaces, lists or brackets)");
        return SR_EINVAL;
    }
    if (!strncmp(url, "mailto:", 7)) {
        const char *dom;
        if (!mail_ok(url + 7, &dom)) {
            snprintf(why, whylen, "%s is not one address (local@domain)", url + 7);
            return SR_EINVAL;
        }
        if (!o->smtp_url || !o->smtp_url[0] || !o->mail_from || !o->mail_from[0]) {
            snprintf(why, whylen, "no SMTP server is configured ([notify] smtp_url, mail_from)");
            return SR_EINVAL;
        }
        if (!sr_notify_domain_in(o->mail_domains ? o->mail_domains : "", dom)) {
            snprintf(why, whylen, "the domain %s is not allowed ([notify] mail_allowed_domains)", dom);
            return SR_EINVAL;
        }
        return SR_OK;
    }
    if (!strncmp(url, "https://", 8) && url[8]) return SR_OK;
    if (!strncmp(url, "http://", 7) && url[7]) {
        if (o->allow_http || loopback_host(url)) return SR_OK;
        snprintf(why, whylen, "plain http only to a loopback address ([notify] allow_http)");
        return SR_EINVAL;
    }
    snprintf(why, whylen, "an https:// (or loopback http://) webhook URL, or a mail address");
    return SR_EINVAL;
}

int sr_notify_target_ok_op(sr_engine *eng, const sr_notify_opts *o, const char *op, const char *url, char *why,
                           size_t whylen)
{
    int rc = sr_notify_target_ok(o, url, why, whylen);
    if (rc || strncmp(url, "mailto:", 7)) return rc;
    sr_rec r = SR_REC_INIT;
    sr_reg_entry re;
    int got = sr_read_registry(eng, op, SR_RG_NOTIFY, SR_NOTIFY_DOMAINS_ID, &r, &re);
    if (got == SR_OK && re.pattern[0] && !sr_notify_domain_in(re.pattern, strchr(url, '@') + 1)) {
        snprintf(why, whylen, "the domain %s is not in operator %s's mail domains", strchr(url, '@') + 1, op);
        rc = SR_EINVAL;
    } else if (got != SR_OK && got != SR_ENOTFOUND) {
        snprintf(why, whylen, "the operator's mail domains could not be read: %s", sr_strerror(got));
        rc = got;
    }
    sr_rec_close(&r);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Messages                                                                   */

static int put(sr_buf *b, const char *s) { return sr_buf_append(b, s, strlen(s)); }

/* base64 (not url) of in, lines of 76 with CRLF */
static int put_b64_lines(sr_buf *b, const char *in, size_t n)
{
    for (size_t k = 0; k < n; k += 57) {
        char out[80];
        size_t m = n - k < 57 ? n - k : 57;
        size_t l = sr_base64((const uint8_t *)in + k, m, out, 0);
        if (sr_buf_append(b, out, l) || put(b, "\r\n")) return SR_ENOMEM;
    }
    return SR_OK;
}

/* RFC 2047: the subject as UTF-8 B encoded-words of at most 75 characters
 * (45 bytes each, never splitting a character), folded. */
static int put_subject(sr_buf *b, const char *s)
{
    size_t n = strlen(s), k = 0;
    if (put(b, "Subject:")) return SR_ENOMEM;
    while (k < n) {
        size_t m = n - k < 45 ? n - k : 45;
        while (m < n - k && ((unsigned char)s[k + m] & 0xC0) == 0x80) m--; /* a character's continuation */
        char out[80];
        size_t l = sr_base64((const uint8_t *)s + k, m, out, 0);
        if (put(b, k ? "\r\n =?UTF-8?B?" : " =?UTF-8?B?") || sr_buf_append(b, out, l) || put(b, "?=")) return SR_ENOMEM;
        k += m;
    }
    return put(b, "\r\n");
}

static void rfc5322_date(int64_t ms, char out[64])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    static const char *wd[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *mo[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    snprintf(out, 64, "%s, %02d %s %04d %02d:%02d:%02d +0000", wd[tm.tm_wday], tm.tm_mday, mo[tm.tm_mon],
             tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* The webhook's body: the step's fields, then the whole event as JSON
 * (fields the alarm kind gains later appear there without a change here). */
static char *webhook_body(const ndel *d, const sr_event_view *ev, const sr_alarm_view *a, size_t *len)
{
    char at[32];
    sr_rfc3339_format(ev->ingest_ms, at);
    sr_buf evj;
    sr_buf_init(&evj);
    json_t *evo = NULL;
    if (sr_event_view_json(ev, NULL, &evj) == SR_OK) evo = json_loadb((const char *)evj.data, evj.len, 0, NULL);
    sr_buf_release(&evj);
    json_t *o = json_pack("{s:s,s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "deliveryId", d->id,
                          "alarmSeq", (json_int_t)d->seq, "operatorId", d->op, "target", d->target, "alarmId",
                          a->alarm_id, "rule", a->rule, "subject", a->subject, "level", level_name(a->level), "state",
                          a->state, "message", a->message, "comment", a->comment, "source", a->source, "by",
                          a->by[0] ? a->by : ev->actor, "at", at);
    if (o && evo) json_object_set_new(o, "event", evo);
    else json_decref(evo);
    sr_buf b;
    sr_buf_init(&b);
    char *out = NULL;
    if (o && sr_json_write(&b, o) == SR_OK && sr_buf_append(&b, "", 1) == SR_OK) {
        out = (char *)b.data;
        *len = b.len - 1;
    } else sr_buf_release(&b);
    json_decref(o);
    return out;
}

static char *mail_message(const sr_notify *n, const ndel *d, const sr_event_view *ev, const sr_alarm_view *a,
                          size_t *len)
{
    char date[64], at[32], subj[600], line[1400];
    rfc5322_date(ev->ingest_ms, date); /* the step's time: the same bytes on every attempt (1) */
    sr_rfc3339_format(ev->ingest_ms, at);
    sr_buf b, t;
    sr_buf_init(&b);
    sr_buf_init(&t);
    /* what the condition is, for a person: the rule and its subject (an
     * alarm id says nothing); events before the rules have only the id */
    if (a->rule[0])
        snprintf(subj, sizeof subj, "[suiro] %s %s: %.100s%s%.100s (%s)", level_ja(a->level), state_ja(a->state),
                 a->rule, a->subject[0] ? " " : "", a->subject, d->op);
    else
        snprintf(subj, sizeof subj, "[suiro] %s %s: %.200s (%s)", level_ja(a->level), state_ja(a->state),
                 a->alarm_id, d->op);
    int rc = 0;
    snprintf(line, sizeof line, "From: <%s>\r\nTo: <%s>\r\n", n->o.mail_from, d->url + 7);
    rc |= put(&b, line);
    rc |= put_subject(&b, subj);
    snprintf(line, sizeof line,
             "Date: %s\r\nMessage-ID: <suiro.%s.%s@%s>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; "
             "charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\nX-Suiro-Delivery-Id: %s\r\n\r\n",
             date, d->id, d->op, n->from_domain, d->id);
    rc |= put(&b, line);
    snprintf(line, sizeof line,
             "suiro の警報 (alarm notification)\r\n\r\n事業者 (operator): %s\r\n警報 (alarm): %.200s\r\n"
             "規則 (rule): %.100s\r\n対象 (subject): %.200s\r\n"
             "レベル (level): %s (%s)\r\n状態 (state): %s (%s)\r\n",
             d->op, a->alarm_id, a->rule, a->subject, level_ja(a->level), level_name(a->level), state_ja(a->state),
             a->state);
    rc |= put(&t, line);
    if (a->comment[0]) {
        snprintf(line, sizeof line, "コメント (comment): %.800s\r\n", a->comment);
        rc |= put(&t, line);
    }
    snprintf(line, sizeof line, "内容 (message): %.800s\r\n発生元 (source): %.100s\r\n操作者 (by): %.100s\r\n"
             "日時 (at): %s\r\n配信 ID (delivery id): %s\r\n",
             a->message, a->source, a->by[0] ? a->by : ev->actor, at, d->id);
    rc |= put(&t, line);
    rc |= put_b64_lines(&b, (const char *)t.data, t.len);
    sr_buf_release(&t);
    if (rc || sr_buf_append(&b, "", 1)) {
        sr_buf_release(&b);
        return NULL;
    }
    *len = b.len - 1;
    return (char *)b.data;
}

/* ------------------------------------------------------------------------ */
/* Deliveries                                                                 */

static const char *del_check(const ndel *d)
{
    const sr_notify *n = d->n;
    if (!d->id[0] || !d->body || !d->url) return "(1) a delivery without its id, body or url";
    if (d->easy && d->waiting) return "(3) a delivery both sending and waiting";
    if (!n->closed && !d->easy && !d->waiting) return "(3) a delivery neither sending nor waiting (stalled)";
    if (n->closed && (d->easy || d->waiting)) return "(3) a delivery busy after dispose";
    if (!d->easy != !d->hdrs) return "(3) a transfer without its headers (or the reverse)";
    if (d->attempts && !d->mail && !d->sig) return "(1) an attempted webhook without its signature";
    if (n->mark_sent >= d->seq) return "(4) the mark at or past a delivery still held";
    return NULL;
}

const char *sr_notify_check(const sr_notify *n)
{
    if (!n) return "NULL notifier";
    const char *why = sr_curlloop_check(n->cl);
    if (why) return why;
    size_t k = 0;
    for (const ndel *d = n->dels; d; d = d->next, k++) {
        if (d->n != n) return "(2) a delivery of another notifier";
        if ((why = del_check(d))) return why;
        for (const ndel *e = d->next; e; e = e->next)
            if (e->seq == d->seq && !strcmp(e->op, d->op) && !strcmp(e->target, d->target))
                return "(2) two deliveries of one step to one target";
    }
    if (k != n->ndels) return "(2) ndels is not the list's length";
    return NULL;
}

static void on_closed_free(uv_handle_t *h) { free(h->data); }

static void del_free(ndel *d)
{
    free(d->url);
    free(d->sig);
    sr_free(d->body); /* an sr_buf's data */
    d->url = d->sig = NULL;
    d->body = NULL;
    uv_close((uv_handle_t *)&d->retry, on_closed_free);
}

static void outcome_done(void *ctx, const sr_result *r)
{
    (void)ctx;
    if (r->rc) sr_slog(SR_LOG_WARN, "notify outcome not stored", "error=%s", sr_err_name(r->rc));
}

/* a NotifyEvent, fire and forget (a crash before it is durable: the
 * delivery is derived again and sent with the same id) */
static void submit_outcome(sr_notify *n, const char *op, const sr_notify_rec *rec)
{
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = {op, "system", SR_ACTOR_SYSTEM, NULL, NULL};
    int rc = sr_cmd_notify(&env, rec, &b);
    if (!rc) {
        sr_slice sl = {b.data, b.len};
        rc = sr_engine_submit(n->eng, &sl, 1, outcome_done, NULL);
    }
    if (rc) sr_slog(SR_LOG_WARN, "notify outcome not queued", "op=%s outcome=%s error=%s", op, rec->outcome, sr_err_name(rc));
    sr_buf_release(&b);
}

static void mark_maybe(sr_notify *n, int force);

/* the delivery leaves: outcome "delivered" or "given_up" */
static void del_finish(ndel *d, const char *outcome, const char *why)
{
    sr_notify *n = d->n;
    sr_notify_rec rec = {outcome, d->seq, d->target, d->id, why ? why : "", d->mail ? "mail" : "webhook",
                         d->attempts, 0};
    submit_outcome(n, d->op, &rec);
    if (!strcmp(outcome, "delivered")) {
        n->delivered++;
        sr_slog(SR_LOG_INFO, "notification delivered", "op=%s target=%s delivery=%s channel=%s attempts=%u", d->op,
                d->target, d->id, rec.channel, d->attempts);
    } else {
        n->given_up++;
        sr_slog(SR_LOG_WARN, "notification given up", "op=%s target=%s delivery=%s channel=%s attempts=%u reason=%s",
                d->op, d->target, d->id, rec.channel, d->attempts, sr_slog_q(why));
    }
    for (ndel **pp = &n->dels; *pp; pp = &(*pp)->next)
        if (*pp == d) {
            *pp = d->next;
            n->ndels--;
            break;
        }
    uv_timer_stop(&d->retry);
    del_free(d);
    mark_maybe(n, 0);
    SR_INVARIANT(sr_notify_check(n));
}

static size_t mail_read(char *buf, size_t size, size_t nitems, void *ud)
{
    ndel *d = ud;
    size_t want = size * nitems, left = d->len - d->off;
    if (want > left) want = left;
    memcpy(buf, d->body + d->off, want);
    d->off += want;
    return want;
}

static void attempt_done(ndel *d, int ok, const char *why);

/* a registry entry of the target, still allowed? (a target deleted or a
 * domain no longer allowed: given up, unsent) */
static int target_still_ok(sr_notify *n, ndel *d, char *why, size_t whylen)
{
    sr_rec r = SR_REC_INIT;
    sr_reg_entry re;
    int rc = sr_read_registry(n->eng, d->op, SR_RG_NOTIFY, d->target, &r, &re);
    if (rc == SR_ENOTFOUND) snprintf(why, whylen, "the target was deleted");
    else if (rc) snprintf(why, whylen, "the target could not be read: %s", sr_strerror(rc));
    else if (strcmp(re.url, d->url)) {
        snprintf(why, whylen, "the target changed");
        rc = SR_EINVAL;
    } else rc = sr_notify_target_ok_op(n->eng, &n->o, d->op, d->url, why, whylen);
    sr_rec_close(&r);
    return rc;
}

static void del_kick(ndel *d)
{
    sr_notify *n = d->n;
    if (n->closed || d->easy || d->waiting) return;
    char why[300];
    if (target_still_ok(n, d, why, sizeof why)) return del_finish(d, "given_up", why);
    struct curl_slist *l = NULL;
    CURL *e = NULL;
    snprintf(why, sizeof why, "cannot start the transfer");
    if (!d->mail) {
        if (!d->sig && sr_sign_body(n->key, d->body, d->len, &d->sig)) {
            snprintf(why, sizeof why, "cannot sign the body");
            goto fail;
        }
        l = sr_signed_headers(n->key, d->sig, "X-Suiro-Delivery-Id", d->id);
        e = l ? sr_post_easy(d->url, d->body, d->len, l, (long)n->o.timeout_ms, (long)n->o.timeout_ms, d->errbuf,
                             "suiro-notify/1")
              : NULL;
    } else {
        char rcpt[300];
        snprintf(rcpt, sizeof rcpt, "<%s>", d->url + 7);
        l = curl_slist_append(NULL, rcpt);
        e = l ? curl_easy_init() : NULL;
        if (e) {
            char from[300];
            snprintf(from, sizeof from, "<%s>", n->o.mail_from);
            d->errbuf[0] = 0;
            d->off = 0;
            curl_easy_setopt(e, CURLOPT_URL, n->o.smtp_url);
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85 */
            curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
#else
            curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_SMTP | CURLPROTO_SMTPS));
#endif
            curl_easy_setopt(e, CURLOPT_MAIL_FROM, from);
            curl_easy_setopt(e, CURLOPT_MAIL_RCPT, l);
            curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(e, CURLOPT_READFUNCTION, mail_read);
            curl_easy_setopt(e, CURLOPT_READDATA, d);
            curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)d->len);
            curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)n->o.timeout_ms);
            curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)n->o.timeout_ms);
            curl_easy_setopt(e, CURLOPT_ERRORBUFFER, d->errbuf);
            const char *tls = n->o.starttls ? n->o.starttls : "none";
            if (!strcmp(tls, "try")) curl_easy_setopt(e, CURLOPT_USE_SSL, (long)CURLUSESSL_TRY);
            else if (!strcmp(tls, "require")) curl_easy_setopt(e, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
            if (n->o.smtp_user && n->o.smtp_user[0]) {
                const char *pw = n->o.smtp_password_env && n->o.smtp_password_env[0] ? getenv(n->o.smtp_password_env)
                                                                                       : NULL;
                curl_easy_setopt(e, CURLOPT_USERNAME, n->o.smtp_user);
                curl_easy_setopt(e, CURLOPT_PASSWORD, pw ? pw : ""); /* libcurl copies it */
            }
        }
    }
    if (!e) goto fail_list;
    if (sr_curlloop_add(n->cl, e, d)) goto fail_list; /* e cleaned up */
    d->easy = e;
    d->hdrs = l;
    d->attempts++;
    sr_slog(SR_LOG_DEBUG, "notify attempt", "op=%s target=%s delivery=%s attempt=%u", d->op, d->target, d->id,
            d->attempts);
    SR_INVARIANT(del_check(d));
    return;
fail_list:
    curl_slist_free_all(l);
fail:
    attempt_done(d, 0, why);
}

static void on_retry(uv_timer_t *t)
{
    ndel *d = t->data;
    d->waiting = 0;
    del_kick(d);
}

static void attempt_done(ndel *d, int ok, const char *why)
{
    sr_notify *n = d->n;
    if (ok) return del_finish(d, "delivered", NULL);
    n->retried++;
    if (wall_ms() - d->born_ms >= (int64_t)n->o.retry_max_age_s * 1000) {
        char w[CURL_ERROR_SIZE + 128];
        snprintf(w, sizeof w, "still failing %us after the alarm step: %s", n->o.retry_max_age_s, why);
        return del_finish(d, "given_up", w);
    }
    uint32_t wait = d->backoff_ms ? d->backoff_ms : n->o.retry_first_ms;
    if (wait > n->o.retry_max_ms) wait = n->o.retry_max_ms;
    d->backoff_ms = wait >= n->o.retry_max_ms / 2 ? n->o.retry_max_ms : wait * 2;
    if (d->attempts <= 1 || d->attempts % 10 == 0)
        sr_slog(SR_LOG_WARN, "notify attempt failed", "op=%s target=%s delivery=%s attempt=%u reason=%s retry_ms=%u",
                d->op, d->target, d->id, d->attempts, sr_slog_q(why), wait);
    d->waiting = 1;
    uv_timer_start(&d->retry, on_retry, wait, 0);
    SR_INVARIANT(del_check(d));
}

static void on_transfer_done(void *priv, CURLcode res, long code)
{
    ndel *d = priv;
    curl_slist_free_all(d->hdrs);
    d->hdrs = NULL;
    d->easy = NULL;
    char why[CURL_ERROR_SIZE + 64];
    int ok = res == CURLE_OK && (d->mail || (code >= 200 && code < 300));
    if (res != CURLE_OK) snprintf(why, sizeof why, "%s", d->errbuf[0] ? d->errbuf : curl_easy_strerror(res));
    else snprintf(why, sizeof why, "%s %ld", d->mail ? "SMTP" : "HTTP", code);
    attempt_done(d, ok, why);
}

/* ------------------------------------------------------------------------ */
/* Deriving the deliveries of an alarm step                                   */

static ndel *del_find(sr_notify *n, uint64_t seq, const char *op, const char *target)
{
    for (ndel *d = n->dels; d; d = d->next)
        if (d->seq == seq && !strcmp(d->op, op) && !strcmp(d->target, target)) return d;
    return NULL;
}

/* One alarm step: a delivery per matching target not done nor held (2). */
static void derive(sr_notify *n, const sr_event_view *ev)
{
    sr_alarm_view a;
    if (sr_event_alarm(ev, &a) != SR_OK || !ev->op[0]) return;
    sr_rec r = SR_REC_INIT;
    sr_reg_entry re;
    if (sr_list_registry(n->eng, ev->op, SR_RG_NOTIFY, &r) != SR_OK) return;
    while (sr_rec_next_registry(&r, &re) == 1) { /* a record that does not decode ends the list */
        int lvl = sr_notify_level(re.access);
        if (!lvl || a.level < lvl) continue;
        int outcome;
        uint32_t att;
        if (sr_engine_notify_done(n->eng, ev->seq, ev->op, re.id, &outcome, &att) == SR_OK) continue;
        if (del_find(n, ev->seq, ev->op, re.id)) continue;
        ndel *d = calloc(1, sizeof *d);
        if (!d) break;
        d->n = n;
        d->seq = ev->seq;
        d->born_ms = ev->ingest_ms;
        snprintf(d->op, sizeof d->op, "%s", ev->op);
        snprintf(d->target, sizeof d->target, "%s", re.id);
        snprintf(d->id, sizeof d->id, "%llu-%s", (unsigned long long)ev->seq, re.id);
        d->mail = !strncmp(re.url, "mailto:", 7);
        d->url = strdup(re.url);
        d->body = d->url ? (d->mail ? mail_message(n, d, ev, &a, &d->len) : webhook_body(d, ev, &a, &d->len)) : NULL;
        uv_timer_init(n->loop, &d->retry);
        d->retry.data = d;
        if (!d->body) {
            sr_slog(SR_LOG_WARN, "notification not made", "op=%s target=%s seq=%llu error=out_of_memory", ev->op,
                    re.id, (unsigned long long)ev->seq);
            del_free(d);
            continue;
        }
        d->next = n->dels;
        n->dels = d;
        n->ndels++;
        del_kick(d);
    }
    sr_rec_close(&r);
}

typedef struct one {
    sr_notify *n;
    uint64_t seq;
} one;

static int derive_one(void *ctx, const sr_event_view *ev)
{
    one *o = ctx;
    if (ev->seq == o->seq) derive(o->n, ev);
    return SR_DONE;
}

/* ---- the mark (4) ---------------------------------------------------------- */

static uint64_t through(const sr_notify *n)
{
    uint64_t t = n->seen;
    for (const ndel *d = n->dels; d; d = d->next)
        if (d->seq - 1 < t) t = d->seq - 1;
    return t;
}

static void mark_done(void *ctx, const sr_result *r)
{
    sr_notify *n = ctx; /* engine thread: only the atomic */
    if (r->rc) sr_slog(SR_LOG_WARN, "notify mark not stored", "error=%s", sr_err_name(r->rc));
    atomic_store(&n->mark_busy, 0);
}

static void on_mark_timer(uv_timer_t *t) { mark_maybe(t->data, 0); }

static void mark_maybe(sr_notify *n, int force)
{
    if (!n->recovered) return;
    uint64_t want = through(n), now = mono_ms();
    if (want <= n->mark_sent) return;
    if (!force && (atomic_load(&n->mark_busy) || now - n->mark_at < n->o.mark_every_ms)) {
        if (!uv_is_active((uv_handle_t *)&n->markt) && !n->closed) {
            uint64_t wait = now - n->mark_at < n->o.mark_every_ms ? n->o.mark_every_ms - (now - n->mark_at) : 10;
            uv_timer_start(&n->markt, on_mark_timer, wait, 0);
        }
        return;
    }
    sr_notify_rec rec = {"mark", 0, "", "", "", "", 0, want};
    sr_buf b;
    sr_buf_init(&b);
    sr_cmd_env env = {"", "system", SR_ACTOR_SYSTEM, NULL, NULL};
    int rc = sr_cmd_notify(&env, &rec, &b);
    if (!rc) {
        sr_slice sl = {b.data, b.len};
        atomic_store(&n->mark_busy, 1);
        if ((rc = sr_engine_submit(n->eng, &sl, 1, mark_done, n))) atomic_store(&n->mark_busy, 0);
    }
    sr_buf_release(&b);
    n->mark_at = now;
    if (rc) {
        sr_slog(SR_LOG_WARN, "notify mark not queued", "error=%s", sr_err_name(rc));
        return;
    }
    n->mark_sent = want;
}

/* ---- the alarm hook (writer thread) -> the loop ----------------------------- */

static void on_alarm(void *ctx, const char *op, uint64_t seq)
{
    (void)op;
    sr_notify *n = ctx;
    pthread_mutex_lock(&n->mu);
    if (n->hook_off) { /* stopping: the mark stays below it, the next start derives it */
        pthread_mutex_unlock(&n->mu);
        return;
    }
    if (n->nh == n->caph) {
        size_t c = n->caph ? n->caph * 2 : 16;
        uint64_t *x = realloc(n->hseq, c * sizeof *x);
        if (x) n->hseq = x, n->caph = c;
    }
    /* no room: the step is not lost, the mark stays below it and the next
     * start derives it from the log */
    if (n->nh < n->caph) n->hseq[n->nh++] = seq;
    else sr_slog(SR_LOG_WARN, "notify: alarm step not taken (out of memory)", "seq=%llu", (unsigned long long)seq);
    uv_async_send(&n->wake); /* under mu: never after dispose closed the handle */
    pthread_mutex_unlock(&n->mu);
}

static void on_wake(uv_async_t *h)
{
    sr_notify *n = h->data;
    if (n->closed || !n->recovered) return;
    pthread_mutex_lock(&n->mu);
    uint64_t *s = n->hseq;
    size_t k = n->nh;
    n->hseq = NULL;
    n->nh = n->caph = 0;
    pthread_mutex_unlock(&n->mu);
    for (size_t i = 0; i < k; i++) {
        if (s[i] <= n->seen) continue; /* derived by the recovery */
        one o = {n, s[i]};
        uint64_t last;
        int rc = sr_engine_log_each(n->eng, s[i], derive_one, &o, &last);
        if (rc) {
            /* the mark stays below it: derived again at the next start */
            sr_slog(SR_LOG_WARN, "notify: alarm step not read", "seq=%llu error=%s", (unsigned long long)s[i],
                    sr_err_name(rc));
            continue;
        }
        n->seen = s[i];
    }
    free(s);
    mark_maybe(n, 0);
    SR_INVARIANT(sr_notify_check(n));
}

/* ------------------------------------------------------------------------ */
/* API                                                                        */

int sr_notify_open(uv_loop_t *loop, sr_engine *eng, const char *data_dir, const sr_notify_opts *o, sr_notify **out,
                   char *err, size_t errlen)
{
    sr_notify *n = calloc(1, sizeof *n);
    if (!n) return SR_ENOMEM;
    n->loop = loop;
    n->eng = eng;
    n->o = *o;
    if (!n->o.mark_every_ms) n->o.mark_every_ms = 1000;
    if (!n->o.retry_first_ms) n->o.retry_first_ms = 1000;
    if (!n->o.retry_max_ms) n->o.retry_max_ms = 300000;
    if (n->o.retry_first_ms > n->o.retry_max_ms) n->o.retry_first_ms = n->o.retry_max_ms;
    if (!n->o.retry_max_age_s) n->o.retry_max_age_s = 86400;
    if (!n->o.timeout_ms) n->o.timeout_ms = 10000;
    const char *at = n->o.mail_from ? strchr(n->o.mail_from, '@') : NULL;
    snprintf(n->from_domain, sizeof n->from_domain, "%s", at ? at + 1 : "suiro.invalid");
    int rc = sr_platform_key_load(data_dir, "notify", &n->key, err, errlen);
    if (!rc) rc = sr_curlloop_open(loop, on_transfer_done, "notify", &n->cl, err, errlen);
    if (rc) {
        sr_sigkey_free(n->key);
        free(n);
        return rc;
    }
    pthread_mutex_init(&n->mu, NULL);
    uv_timer_init(loop, &n->markt);
    n->markt.data = n;
    uv_async_init(loop, &n->wake, on_wake);
    n->wake.data = n;
    *out = n;
    return SR_OK;
}

typedef struct recov {
    sr_notify *n;
    uint64_t events, steps;
    uint64_t target; /* the last event read that is not a mark (push's or ours): a start after a quiet stop writes none */
} recov;

static int recov_event(void *ctx, const sr_event_view *ev)
{
    recov *r = ctx;
    r->events++;
    if (strcmp(ev->kind, "push_mark") && strcmp(ev->kind, "notify")) r->target = ev->seq;
    if (!strcmp(ev->kind, "alarm")) {
        r->steps++;
        derive(r->n, ev);
    }
    return 0;
}

int sr_notify_recover(sr_notify *n, size_t *pending)
{
    uint64_t mark = 0, last = 0;
    int have = sr_engine_notify_mark(n->eng, &mark) == SR_OK;
    sr_engine_on_alarm(n->eng, on_alarm, n); /* before the scan: nothing falls in between (on_wake skips <= seen) */
    recov r = {n, 0, 0, have ? mark : 0};
    int rc = sr_engine_log_each(n->eng, have ? mark + 1 : UINT64_MAX, recov_event, &r, &last);
    if (rc) {
        sr_engine_on_alarm(n->eng, NULL, NULL);
        return rc;
    }
    n->seen = have ? r.target : last; /* the first start: nothing older is sent */
    n->mark_sent = have ? mark : 0;
    n->recovered = 1;
    int writing = sr_engine_write_state(n->eng, NULL) == SR_OK;
    if (writing) mark_maybe(n, 1);
    sr_slog(n->ndels ? SR_LOG_WARN : SR_LOG_INFO, "notify recovered",
            "from_seq=%llu to_seq=%llu events=%llu alarm_steps=%llu deliveries_pending=%zu",
            (unsigned long long)(have ? mark + 1 : 0), (unsigned long long)last, (unsigned long long)r.events,
            (unsigned long long)r.steps, n->ndels);
    if (pending) *pending = n->ndels;
    uv_async_send(&n->wake); /* steps the hook saw during the scan */
    SR_INVARIANT(sr_notify_check(n));
    return SR_OK;
}

void sr_notify_stats(const sr_notify *n, sr_notify_counts *out)
{
    *out = (sr_notify_counts){n->delivered, n->retried, n->given_up, n->ndels};
}

void sr_notify_dispose(sr_notify *n)
{
    if (!n || n->closed) return;
    sr_engine_on_alarm(n->eng, NULL, NULL);
    pthread_mutex_lock(&n->mu); /* a hook call already under way sees it */
    n->hook_off = 1;
    pthread_mutex_unlock(&n->mu);
    mark_maybe(n, 1); /* (4): below what is still held */
    n->closed = 1;
    size_t left = n->ndels;
    while (n->dels) {
        ndel *d = n->dels;
        n->dels = d->next;
        if (d->easy) {
            sr_curlloop_abort(n->cl, d->easy); /* the receiver may or may not have it: sent again after restart */
            curl_slist_free_all(d->hdrs);
        }
        uv_timer_stop(&d->retry);
        del_free(d);
    }
    n->ndels = 0;
    sr_curlloop_dispose(n->cl);
    uv_timer_stop(&n->markt);
    uv_close((uv_handle_t *)&n->markt, NULL);
    uv_close((uv_handle_t *)&n->wake, NULL);
    sr_slog(left ? SR_LOG_WARN : SR_LOG_INFO, "notify stopped",
            "delivered=%llu retried=%llu given_up=%llu pending_after_restart=%zu", (unsigned long long)n->delivered,
            (unsigned long long)n->retried, (unsigned long long)n->given_up, left);
}

void sr_notify_free(sr_notify *n)
{
    if (!n) return;
    while (atomic_load(&n->mark_busy)) { /* a mark submitted at dispose completes on the engine's thread */
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    sr_sigkey_free(n->key);
    sr_curlloop_free(n->cl);
    pthread_mutex_destroy(&n->mu);
    free(n->hseq);
    free(n);
}
