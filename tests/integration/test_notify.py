#!/usr/bin/python3
"""tests/integration/test_notify.py -- alarm notifications (issue #17, R-MO-3;
docs/monitoring.md "Notifications") through the real `suiro serve`.

The alarm is a real one: the app's push URL is down and [push] max_queue is 1,
so two values of a monitor drop one push and the push module raises the
alarm of rule `push-dropped`, subject APP001 (minor). Targets are made through the Admin API
(/admin/v1/operators/demo/notify/targets). The mail goes to an SMTP server
the test runs (python3-aiosmtpd, on a free loopback port); the webhook to an
http.server of srtest (PushReceiver), which answers 503 until told otherwise.
Checked:
  - a mail target of a domain not in [notify] mail_allowed_domains, two
    addresses in one target, plain http to a non-loopback host: refused at
    creation (400 E1001 naming the field and why), nothing stored;
  - an operator's own, narrower list of mail domains (a subset of the
    platform's): a target outside it is refused;
  - mail: exactly one message arrives for the alarm step, with From, To, a
    Japanese Subject encoded as RFC 2047 encoded-words, Date, a Message-ID
    made from the delivery id, X-Suiro-Delivery-Id, a base64 UTF-8 body;
  - webhook: retried through 503s with the same X-Suiro-Delivery-Id, then
    accepted exactly once; the body says the alarm, and its X-Suiro-Signature
    verifies with the platform key; a `notify` delivered event is in the log;
  - the mail domain removed from the allow list (restart): the next alarm
    step is not mailed to it, a `given_up` event says why;
  - kill -9 of the server while a webhook is being retried: after the
    restart the delivery comes, with the same id, and is accepted once;
  - kill -9 after the receiver accepted a delivery and before its outcome
    was durable: it comes again after the restart with the same id and
    body, its signature valid (the id is the receiver's dedup key), and
    never after that;
  - a webhook still failing retry_max_age_s after its step: given up, a
    `notify` given_up event and a warning line, and no alarm of its own.

Every process is stopped by its PID; every wait is on a condition with a
deadline. usage: test_notify.py SUIRO_BIN"""
import email
import email.header
import email.policy
import json
import os
import re
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srtest  # noqa: E402
import test_push as tp  # noqa: E402  (helpers only: its main() runs under __main__)

from aiosmtpd.controller import Controller  # noqa: E402

BIN = tp.BIN
check = tp.check
PW = "notify-admin-pass-2026"


class Mailbox:
    """The SMTP server's handler: every message it accepted (250)."""

    def __init__(self):
        self.cv = threading.Condition()
        self.msgs = []

    async def handle_DATA(self, server, session, envelope):
        with self.cv:
            self.msgs.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
            self.cv.notify_all()
        return "250 OK"

    def wait_for(self, pred, timeout=15):
        with self.cv:
            return self.cv.wait_for(lambda: pred(self.msgs), timeout)


def conf(d, name, smtp_port, domains, extra=""):
    path = os.path.join(tp.T, name + ".ini")
    with open(path, "w") as f:
        # [alarms] interval_s 0: the rules' alarms (no data, disk, the clock of
        # the machine) stay out; each case's steps are its push drop's only
        f.write("[engine]\ndata_dir = %s\n\n[push]\nmax_queue = 1\nmax_backoff_ms = 500\n\n[alarms]\ninterval_s = 0\n\n"
                "[notify]\nsmtp_url = smtp://127.0.0.1:%d\nmail_from = suiro@water.example.jp\n"
                "mail_allowed_domains = %s\nretry_first_ms = 100\nretry_max_ms = 400\n%s\n[log]\nlevel = debug\n"
                % (d, smtp_port, domains, extra))
    return path


def raise_alarm(srv, name):
    """The push module's alarm: the app is down, max_queue 1, values dropped."""
    gw = tp.Gateway(srv)
    app = tp.App(srv)
    mon = tp.start_monitor(app, gw)
    check("%s: 3 values stored while the app's push URL is down" % name, gw.publish_values(mon, [1, 2, 3]))
    check("%s: the push drop raised an alarm" % name,
          tp.wait_until(lambda: "push queue over its bound" in srv.logtext(), 15), srv.logtext()[-2000:])
    gw.close()


def err(b):
    """The refusal of an admin answer: {"code", "message", "detail"}."""
    return (b or {}).get("result") or {} if isinstance(b, dict) else {}


def replay(d, kind):
    r = subprocess.run([BIN, "replay", d, "--kind", kind], capture_output=True, text=True)
    return [json.loads(ln) for ln in r.stdout.splitlines() if ln.strip()]


def main():
    app_down = tp.Receiver(listening=False)  # the app's push URL: connections refused
    hook = tp.Receiver()
    hook.mode = "fail"                       # the webhook answers 503 until told otherwise
    box = Mailbox()
    smtp_port = srtest.free_port()
    smtp = Controller(box, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    d = os.path.join(tp.T, "notify")
    pw, pw2 = srtest.init_with_admin(BIN, d, demo=True, second="admin2")
    sheet = os.path.join(tp.T, "notify-sheet.csv")
    srtest.import_sheet(BIN, d, sheet, tp.sheet_with_push("http://127.0.0.1:%d/app" % app_down.port))
    srtest.import_sheet(BIN, d, os.path.join(tp.T, "other.csv"), "#suiro-setup-sheet v1\n[operator]\nid,name\nother,Other\n")
    pub = tp.platform_key(d)
    try:
        # ---- 1: targets, refusals, one mail, a webhook through 503s -----------
        srv = tp.Server(BIN, d, conf(d, "n1", smtp_port, "water.example.jp, other.example.jp"), "notify-1")
        hp = srv.ports["http"]
        root = srtest.admin_session(hp, "admin", pw, PW)
        second = srtest.admin_session(hp, "admin2", pw2, PW + "-2") if pw2 else None
        adm = srtest.admin_new_user(hp, root, "opa", "operator", "demo", ["operator_admin"], PW + "-opa", second)
        stranger = srtest.admin_new_user(hp, root, "opx", "operator", "other", ["operator_admin"], PW + "-opx", second)
        base = "/admin/v1/operators/demo/notify/targets"
        st, b = stranger.call("POST", base, {"id": "x", "url": "https://example.com/x", "level": "warning"})
        check("another operator's admin may not add demo's targets (403 E2003, setup.manage)",
              st == 403 and "setup.manage" in json.dumps(b), (st, b))
        st, b = root.call("GET", base)
        check("a platform admin may not read an operator's targets (403: setup.read is the operator's)",
              st == 403, (st, b))
        st, b = adm.call("POST", base, {"id": "gmail", "mail": "someone@gmail.com", "level": "warning"})
        check("a mail target of a domain not allowed is refused (400 E1001 naming mail and the domain)",
              st == 400 and err(b).get("code") == "E1001" and err(b).get("message") ==
              "mail: the domain gmail.com is not allowed ([notify] mail_allowed_domains)", (st, b))
        st, b = adm.call("POST", base, {"id": "two", "mail": "a@water.example.jp,b@water.example.jp",
                                        "level": "warning"})
        check("two addresses in one target are refused (400 E1001)", st == 400 and err(b).get("code") == "E1001"
              and "one mail address" in err(b).get("message", ""), (st, b))
        st, b = adm.call("POST", base, {"id": "far", "url": "http://203.0.113.7/alarm", "level": "warning"})
        check("a webhook over plain http to a non-loopback host is refused (400 E1001)",
              st == 400 and err(b).get("code") == "E1001" and "loopback" in err(b).get("message", ""), (st, b))
        st, b = adm.call("POST", base, {"id": "ops", "mail": "ops@water.example.jp", "level": "warning",
                                        "name": "運用当番"})
        check("a mail target of an allowed domain is created (201)",
              st == 201 and b.get("channel") == "mail" and b.get("mail") == "ops@water.example.jp", (st, b))
        st, b = adm.call("POST", base, {"id": "hook", "url": "http://127.0.0.1:%d/alarm" % hook.port,
                                        "level": "minor"})
        check("a loopback webhook target is created (201)", st == 201 and b.get("channel") == "webhook", (st, b))
        st, b = adm.call("POST", base, {"id": "majoronly", "url": "http://127.0.0.1:%d/major" % hook.port,
                                        "level": "major"})
        check("a webhook target for major alarms only is created (201)", st == 201, (st, b))
        dom = "/admin/v1/operators/demo/notify/mail-domains"
        st, b = adm.call("PUT", dom, {"domains": ["gmail.com"]})
        check("an operator's own mail domains must be the platform's (400 E1001)",
              st == 400 and "gmail.com is not in the platform's list" in err(b).get("message", ""), (st, b))
        st, b = adm.call("PUT", dom, {"domains": ["other.example.jp"]})
        check("demo narrows its mail domains to other.example.jp (200)", st == 200, (st, b))
        st, b = adm.call("POST", base, {"id": "ops2", "mail": "ops2@water.example.jp", "level": "warning"})
        check("then a target of water.example.jp (the platform's, not demo's) is refused",
              st == 400 and "not in operator demo's mail domains" in err(b).get("message", ""), (st, b))
        st, b = adm.call("GET", dom)
        check("GET shows demo's list and the platform's",
              st == 200 and b.get("domains") == ["other.example.jp"] and "water.example.jp" in b.get("platform", ""),
              (st, b))
        st, b = adm.call("PUT", dom, {"domains": []})
        check("an empty list removes the narrowing", st == 200 and adm.call("GET", dom)[1].get("domains") == [],
              (st, b))
        st, b = adm.call("GET", base)
        check("the list holds the three targets, none of the refused ones",
              st == 200 and sorted(t["id"] for t in b["items"]) == ["hook", "majoronly", "ops"], (st, b))
        env = dict(os.environ, SUIRO_URL="http://127.0.0.1:%d" % srv.ports["http"], SUIRO_TOKEN=adm.token)
        r = subprocess.run([BIN, "admin", "notify-targets", "demo"], capture_output=True, text=True, env=env,
                           stdin=subprocess.DEVNULL)
        check("`suiro admin notify-targets demo` lists them", r.returncode == 0 and '"ops"' in r.stdout,
              (r.returncode, r.stdout, r.stderr))

        raise_alarm(srv, "1")
        check("the webhook is attempted at least 3 times while it answers 503",
              hook.wait_for(lambda h: len(h.failed("/alarm")) >= 3, 15), hook.all())
        hook.mode = "ok"
        check("then it is accepted", hook.wait_for(lambda h: len(h.accepted("/alarm")) >= 1, 15))
        check("mail: one message arrives", box.wait_for(lambda m: len(m) >= 1))
        check("the server logs both deliveries",
              tp.wait_until(lambda: srv.logtext().count('msg="notification delivered"') >= 2, 15),
              srv.logtext()[-3000:])
        check("notify-1: the server stops cleanly", srv.stop() == 0)
        check("notify-1: no sanitizer report", tp.asan_clean(srv), srv.logtext()[-2000:])

        reqs = [r for r in hook.all() if r["path"] == "/alarm"]
        ids = {r["headers"].get("x-suiro-delivery-id") for r in reqs}
        ok = hook.accepted("/alarm")
        body = json.loads(ok[0]["body"]) if ok else {}
        seq = body.get("alarmSeq")
        check("webhook: every attempt carried the same X-Suiro-Delivery-Id <seq>-hook, accepted exactly once",
              len(ids) == 1 and len(ok) == 1 and ids == {"%s-hook" % seq}, (ids, len(ok)))
        check("webhook: the body names the alarm step",
              body.get("rule") == "push-dropped" and body.get("subject") == "APP001"
              and body.get("alarmId") == body.get("event", {}).get("alarm", {}).get("alarm_id") and body.get("level") == "minor"
              and body.get("state") == "raised" and body.get("operatorId") == "demo"
              and body.get("deliveryId") == "%s-hook" % seq and body.get("event", {}).get("alarm"), body)
        check("webhook: its X-Suiro-Signature verifies with the platform key (and X-Suiro-Signature-Alg: ES256)",
              all(tp.verify(pub, r["body"], r["headers"].get("x-suiro-signature"))
                  and r["headers"].get("x-suiro-signature-alg") == "ES256" for r in reqs))
        check("webhook: nothing reached the major-only target (a minor alarm)",
              not [r for r in hook.all() if r["path"] == "/major"])
        check("mail: exactly one message (one step, one target)", len(box.msgs) == 1, box.msgs)
        frm, rcpt, raw = box.msgs[0]
        m = email.message_from_bytes(raw, policy=email.policy.default)
        subj = str(email.header.make_header(email.header.decode_header(m["Subject"])))
        check("mail: envelope from suiro@water.example.jp to ops@water.example.jp",
              frm == "suiro@water.example.jp" and rcpt == ["ops@water.example.jp"], (frm, rcpt))
        check("mail: the Subject is RFC 2047 encoded and says 軽故障 発生 push-dropped APP001 (demo)",
              "=?UTF-8?B?" in raw.decode(errors="replace").split("\r\n\r\n")[0]
              and subj == "[suiro] 軽故障 発生: push-dropped APP001 (demo)", subj)
        check("mail: Message-ID from the delivery id, X-Suiro-Delivery-Id, From, To, Date",
              m["Message-ID"] == "<suiro.%s-ops.demo@water.example.jp>" % seq
              and m["X-Suiro-Delivery-Id"] == "%s-ops" % seq and "suiro@water.example.jp" in m["From"]
              and "ops@water.example.jp" in m["To"] and m["Date"], dict(m.items()))
        text = m.get_content()
        check("mail: the body (UTF-8) names the operator, the alarm, its rule, level and message",
              "push-dropped" in text and body.get("alarmId", "?") in text and "軽故障" in text and "demo" in text
              and "push queue of app APP001" in text, text)
        ev = [e for e in replay(d, "notify") if e.get("notify", {}).get("outcome") == "delivered"]
        check("the log holds a `notify` delivered event per delivery (webhook and mail)",
              sorted(e["notify"].get("channel") for e in ev) == ["mail", "webhook"], ev)

        # ---- 2: the domain no longer allowed: not sent -------------------------
        n_mail = len(box.msgs)
        hook_ok = len(hook.accepted("/alarm"))
        srv = tp.Server(BIN, d, conf(d, "n2", smtp_port, "other.example.jp"), "notify-2")
        raise_alarm(srv, "2")
        check("2: the webhook gets the new alarm step",
              hook.wait_for(lambda h: len(h.accepted("/alarm")) > hook_ok, 15))
        # the webhook's outcome durable before the stop (a stop while its answer is
        # in flight may send it again after the restart: at least once, same id)
        check("2: the webhook delivery is logged delivered",
              tp.wait_until(lambda: 'msg="notification delivered"' in srv.logtext(), 15), srv.logtext()[-3000:])
        check("2: the mail delivery is given up (domain no longer allowed), logged",
              tp.wait_until(lambda: 'msg="notification given up"' in srv.logtext()
                            and "water.example.jp is not allowed" in srv.logtext(), 15), srv.logtext()[-3000:])
        check("2: the server stops cleanly", srv.stop() == 0)
        check("2: no mail was sent to the disallowed domain", len(box.msgs) == n_mail, box.msgs[n_mail:])
        gu = [e for e in replay(d, "notify") if e.get("notify", {}).get("outcome") == "given_up"]
        check("2: a `notify` given_up event says why",
              len(gu) == 1 and "not allowed" in gu[0]["notify"].get("error", ""), gu)

        # ---- 3: kill -9 while the webhook is retried ---------------------------
        hook.mode = "fail"
        before = {r["headers"].get("x-suiro-delivery-id") for r in hook.all()}
        srv = tp.Server(BIN, d, conf(d, "n3", smtp_port, "other.example.jp"), "notify-3")
        raise_alarm(srv, "3")
        check("3: the new step's webhook is being retried (2 attempts failed)",
              hook.wait_for(lambda h: len([r for r in h.failed("/alarm")
                                           if r["headers"].get("x-suiro-delivery-id") not in before]) >= 2, 15))
        new_ids = {r["headers"].get("x-suiro-delivery-id") for r in hook.failed("/alarm")} - before
        srv.p.kill()
        srv.p.wait()
        hook.mode = "ok"
        srv = tp.Server(BIN, d, conf(d, "n4", smtp_port, "other.example.jp"), "notify-4")
        check("3: after the restart the delivery arrives",
              hook.wait_for(lambda h: any(r["headers"].get("x-suiro-delivery-id") in new_ids
                                          for r in h.accepted("/alarm")), 15), hook.all())
        check("3: the server logs it delivered",
              tp.wait_until(lambda: 'msg="notification delivered"' in srv.logtext(), 15), srv.logtext()[-3000:])
        check("3: the server stops cleanly", srv.stop() == 0)
        got = [r for r in hook.accepted("/alarm") if r["headers"].get("x-suiro-delivery-id") in new_ids]
        check("3: with the same delivery id as before the kill, accepted exactly once",
              len(new_ids) == 1 and len(got) == 1, (new_ids, len(got)))
        check("3: its signature verifies", got and tp.verify(pub, got[0]["body"], got[0]["headers"].get("x-suiro-signature")))
        ids_all = [r["headers"].get("x-suiro-delivery-id") for r in hook.accepted("/alarm")]
        check("no delivery id was accepted twice so far", len(ids_all) == len(set(ids_all)), ids_all)

        # ---- 4: kill -9 after the receiver took it, before the outcome was durable ----
        hook.mode = "hold"
        hook.released.clear()
        before = {r["headers"].get("x-suiro-delivery-id") for r in hook.all()}
        n_arr = len(hook.arrived)
        srv = tp.Server(BIN, d, conf(d, "n5", smtp_port, "other.example.jp"), "notify-5")
        raise_alarm(srv, "4")
        check("4: the new step's webhook is in flight (held by the receiver)",
              hook.wait_for(lambda h: len(h.arrived) > n_arr, 15))
        srv.p.kill()
        srv.p.wait()
        hook.mode = "ok"
        hook.release()   # the receiver processed it (200); suiro never saw the answer
        check("4: the receiver accepted it before the restart",
              hook.wait_for(lambda h: [r for r in h.accepted("/alarm")
                                       if r["headers"].get("x-suiro-delivery-id") not in before], 15))
        first = [r for r in hook.accepted("/alarm") if r["headers"].get("x-suiro-delivery-id") not in before][0]
        fid = first["headers"].get("x-suiro-delivery-id")
        srv = tp.Server(BIN, d, conf(d, "n6", smtp_port, "other.example.jp"), "notify-6")
        check("4: after the restart it comes again: same X-Suiro-Delivery-Id, same body, signature valid",
              hook.wait_for(lambda h: len([r for r in h.accepted("/alarm")
                                           if r["headers"].get("x-suiro-delivery-id") == fid]) >= 2, 15)
              and all(r["body"] == first["body"] and tp.verify(pub, r["body"], r["headers"].get("x-suiro-signature"))
                      for r in hook.accepted("/alarm") if r["headers"].get("x-suiro-delivery-id") == fid),
              [r["headers"] for r in hook.all() if r["headers"].get("x-suiro-delivery-id") == fid])
        check("4: the server logs it delivered",
              tp.wait_until(lambda: 'msg="notification delivered"' in srv.logtext(), 15), srv.logtext()[-3000:])
        check("4: the server stops cleanly", srv.stop() == 0)
        srv = tp.Server(BIN, d, conf(d, "n7", smtp_port, "other.example.jp"), "notify-7")
        rec = tp.wait_until(lambda: re.search(r'msg="notify recovered" from_seq=(\d+)', srv.logtext()), 15)
        check("4: a restart after the outcome is durable reads the log after it (its mark passed the step)",
              rec and int(rec.group(1)) > int(fid.split("-")[0]), srv.logtext()[-2000:])
        check("4: ... and sends it no more", srv.stop() == 0
              and len([r for r in hook.all() if r["headers"].get("x-suiro-delivery-id") == fid]) == 2)

        # ---- 5: still failing after retry_max_age_s: given up, a logged event, no loop ----
        hook.mode = "fail"
        alarms_before = len(replay(d, "alarm"))
        given_before = len([e for e in replay(d, "notify") if e["notify"].get("outcome") == "given_up"])
        srv = tp.Server(BIN, d, conf(d, "n8", smtp_port, "other.example.jp", "retry_max_age_s = 1\n"), "notify-8")
        raise_alarm(srv, "5")
        check("5: a webhook failing for retry_max_age_s (1 s) after its step is given up, logged with why",
              tp.wait_until(lambda: re.search(r'msg="notification given up" op=demo target=hook .*still failing 1s',
                                              srv.logtext()), 20), srv.logtext()[-3000:])
        check("5: the server stops cleanly", srv.stop() == 0)
        gu = [e for e in replay(d, "notify") if e["notify"].get("outcome") == "given_up"]
        check("5: a `notify` given_up event of the webhook says why",
              len(gu) > given_before and any(e["notify"].get("channel") == "webhook"
                                             and "still failing" in e["notify"].get("error", "") for e in gu), gu)
        check("5: giving up raised no alarm of its own (only the push drops' alarms are in the log)",
              all(a.get("alarm", {}).get("source") == "push" for a in replay(d, "alarm"))
              and len(replay(d, "alarm")) > alarms_before)
        check("no sanitizer report in any server's log", all(tp.asan_clean(s) for s in tp.SERVERS),
              [s.log for s in tp.SERVERS if not tp.asan_clean(s)])
    finally:
        smtp.stop()
        for s in tp.SERVERS:
            if s.p and s.p.poll() is None:
                srtest.stop_server(s.p, 30)
        for g in tp.GATEWAYS:
            try:
                g.close()
            except Exception:
                pass
        for r in tp.RECEIVERS:
            r.stop()
    sys.exit(check.summary())


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001
        check.failed(e)
        sys.exit(check.summary())
