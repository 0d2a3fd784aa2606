/* tests/api/test_notify.c -- what an alarm notification target may be
 * (api/notify.h sr_notify_target_ok, sr_notify_domain_in): the rules the
 * Admin API applies at creation and the notifier at every attempt. The
 * deliveries themselves run through the real binary in
 * tests/integration/test_notify.py. */
#include <criterion/criterion.h>

#include "api/notify.h"

#include <string.h>

static const sr_notify_opts MAIL = {.smtp_url = "smtp://127.0.0.1:2525",
                                    .mail_from = "suiro@water.example.jp",
                                    .mail_domains = " water.example.jp ,Other.Example.JP"};

static int ok(const sr_notify_opts *o, const char *url, const char *want_why)
{
    char why[300] = "";
    int rc = sr_notify_target_ok(o, url, why, sizeof why);
    if (want_why) cr_assert(strstr(why, want_why), "%s: %s (wanted %s)", url, why, want_why);
    return rc == SR_OK;
}

Test(notify, mail_goes_only_to_one_address_of_an_allowed_domain)
{
    cr_assert(ok(&MAIL, "mailto:ops@water.example.jp", NULL));
    cr_assert(ok(&MAIL, "mailto:ops@OTHER.example.jp", NULL), "domains match case-insensitively");
    cr_assert(!ok(&MAIL, "mailto:ops@gmail.com", "the domain gmail.com is not allowed"));
    cr_assert(!ok(&MAIL, "mailto:ops@sub.water.example.jp", "not allowed"), "exact match: a subdomain is another");
    cr_assert(!ok(&MAIL, "mailto:ops@example.jp", "not allowed"), "exact match: a parent is another");
    cr_assert(!ok(&MAIL, "mailto:a@water.example.jp,b@water.example.jp", "one mail address"), "a list");
    cr_assert(!ok(&MAIL, "mailto:a@water.example.jp;b@water.example.jp", "one mail address"));
    cr_assert(!ok(&MAIL, "mailto:A <a@water.example.jp>", "one mail address"), "a display name");
    cr_assert(!ok(&MAIL, "mailto:a@water.example.jp\r\nBcc: x@gmail.com", "one mail address"), "header injection");
    cr_assert(!ok(&MAIL, "mailto:a@b@water.example.jp", "not one address"));
    cr_assert(!ok(&MAIL, "mailto:@water.example.jp", "not one address"));
    cr_assert(!ok(&MAIL, "mailto:.a@water.example.jp", "not one address"));
    cr_assert(!ok(&MAIL, "mailto:a..b@water.example.jp", "not one address"));
    cr_assert(!ok(&MAIL, "mailto:a@-water.example.jp", "not one address"));
    cr_assert(!ok(&MAIL, "mailto:a@localhost", "not one address"), "a domain with no dot");
    sr_notify_opts none = MAIL;
    none.mail_domains = "";
    cr_assert(!ok(&none, "mailto:ops@water.example.jp", "not allowed"), "an empty list allows nothing");
    none = MAIL;
    none.smtp_url = "";
    cr_assert(!ok(&none, "mailto:ops@water.example.jp", "no SMTP server"));
}

Test(notify, webhooks_are_https_or_loopback_http)
{
    cr_assert(ok(&MAIL, "https://soc.example.jp/hook", NULL));
    cr_assert(ok(&MAIL, "http://127.0.0.1:8080/hook", NULL));
    cr_assert(ok(&MAIL, "http://127.9.9.9/hook", NULL));
    cr_assert(ok(&MAIL, "http://localhost/hook", NULL));
    cr_assert(ok(&MAIL, "http://[::1]:9000/hook", NULL));
    cr_assert(!ok(&MAIL, "http://203.0.113.7/hook", "loopback"));
    cr_assert(!ok(&MAIL, "http://127.0.0.1.evil.example/hook", "loopback"), "a name that starts like one");
    cr_assert(!ok(&MAIL, "ftp://x.example/", "webhook URL"));
    cr_assert(!ok(&MAIL, "https://", "webhook URL"));
    sr_notify_opts open = MAIL;
    open.allow_http = 1;
    cr_assert(ok(&open, "http://203.0.113.7/hook", NULL), "[notify] allow_http");
}

Test(notify, levels_and_domain_lists)
{
    cr_assert_eq(sr_notify_level("warning"), 1);
    cr_assert_eq(sr_notify_level("minor"), 2);
    cr_assert_eq(sr_notify_level("major"), 3);
    cr_assert_eq(sr_notify_level("critical"), 0);
    cr_assert_eq(sr_notify_level(""), 0);
    cr_assert(sr_notify_domain_in("a.jp,b.jp", "b.jp"));
    cr_assert(sr_notify_domain_in(" a.jp , b.jp ", "a.jp"));
    cr_assert(!sr_notify_domain_in("a.jp,b.jp", "c.jp"));
    cr_assert(!sr_notify_domain_in("aa.jp", "a.jp"));
    cr_assert(!sr_notify_domain_in("", "a.jp"));
    cr_assert(!sr_notify_domain_in("a.jp", ""));
}
