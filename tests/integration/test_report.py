#!/usr/bin/python3
"""tests/integration/test_report.py -- incident reports end to end (issue
#18, R-RE-4; engine/report.c, api/report.c, api/admin_report.c,
docs/incident-report.md) with the real `suiro serve`, `suiro gwsim run
--answer` as the gateway and the Api client as the app:

 1. An incident: the app reads current values, sends a control that
    succeeds (with a protection) and one the gateway fails; the gateway
    disconnects; the gateway-offline rule raises an alarm, which an admin
    acknowledges; an operator admin asks for another operator's report
    (403: a refusal, in the report).
 2. GET /admin/v1/reports/incident (the auditor): the connections with
    their reasons, the requests and their outcomes, the controls with who,
    what and the signature's state, the alarm's steps, the refusal, the
    values of the points involved (their stored values in the window).
 3. `suiro report incident DIR` gives the same JSON, byte for byte; and
    `suiro admin report` the same through the API.
 4. format=html: one page, the sections, no URL, no script.
 5. Who may read it: an operator admin its own operator's (the default),
    not another's (403 E2003); a user without audit.read: 403.
 6. Bad input: from after to, a bad time, a missing to, an unknown point or
    operator: 400/404 naming it; the CLI exits 2 naming it.
usage: test_report.py SUIRO_BIN"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-report-")
D = os.path.join(T, "data")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srtest import (OTHER_OPERATOR_SHEET, Api, Checks, Signer, admin_new_user, admin_session, approve_if_pending, finish,  # noqa: E402
                    import_sheet,
                    init_with_admins, start_server, stop_server, wait_until)

check = Checks()
procs = []
R = "/admin/v1/reports/incident"


def rfc(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


def report(api, **params):
    st, data, _ = api.call("GET", R + "?" + urllib.parse.urlencode(params), raw=True)
    return st, data


def cli(*args):
    return subprocess.run([BIN, "report", "incident", D] + list(args), capture_output=True, text=True)


try:
    pw, pw2 = init_with_admins(BIN, D, demo=True)
    import_sheet(BIN, D, os.path.join(T, "other.csv"), OTHER_OPERATOR_SHEET)
    # APP001's data-protection certificate (docs/signatures.md): its control is signed for real
    signer = Signer("APP001", 0x1A)
    with open(os.path.join(T, "app001.pem"), "w") as f:
        f.write(signer.pem)
    r = subprocess.run([BIN, "cert", "import", D, "--operator", "demo", "--app", "APP001", "--pem",
                        os.path.join(T, "app001.pem")], capture_output=True, text=True)
    check("APP001's certificate is registered", r.returncode == 0, r.stderr)
    cfg = os.path.join(T, "suiro.ini")
    with open(cfg, "w") as f:
        f.write("[engine]\ndata_dir = %s\n[mqtt]\nlisten = 127.0.0.1:0\n[http]\nlisten = 127.0.0.1:0\n"
                "[alarms]\ninterval_s = 1\ngateway_offline_s = 1\n" % D)
    server, ports = start_server(BIN, D, os.path.join(T, "server.log"), config=cfg)
    procs.append(server)
    hp = ports["http"]
    admin = admin_session(hp, "admin", pw, "report-admin-pw-1")
    admin2 = admin_session(hp, "admin2", pw2, "report-admin2-pw-1")
    st, b = approve_if_pending(admin2, *admin.call("POST", "/admin/v1/users", {"id": "aud1", "scope": {"kind": "platform"},
                                                                              "roles": ["auditor"]}))
    st, b = admin.call("POST", "/admin/v1/users/aud1/password-reset")
    auditor = admin_session(hp, "aud1", b["password"], "report-aud1-pw-1")
    opadm = admin_new_user(hp, admin, "demoadm", "operator", "demo", ["operator_admin"], "report-demoadm-pw-1",
                           approver=admin2)
    viewer = admin_new_user(hp, admin, "demoview", "operator", "demo", ["operator_general"], "report-demoview-pw-1",
                            approver=admin2)
    t0 = time.time() - 0.001
    # 1. the incident
    gwlog = os.path.join(T, "gwsim.err")
    gw = subprocess.Popen([BIN, "gwsim", "run", "--port", str(ports["mqtt"]), "--operator", "demo", "--gateway-id",
                           "GW002", "--secret", "demo-gw002-secret", "--messages", "0", "--answer", "--sheet", "demo",
                           "--control-fail", "P010", "--duration", "120"],
                          stdout=subprocess.PIPE, stderr=open(gwlog, "w"), text=True)
    procs.append(gw)
    app = Api(hp)
    app.login("APP001", "demo", "demo-app001-secret")
    last = [None]

    def current():
        last[0] = app.call("POST", "/api/v1/current-values", {"dataIds": ["P006", "P007"], "timeoutMs": 3000})
        return last[0][0] == 200
    check("the app reads current values through the gateway", wait_until(current, timeout=15), last[0])
    prot = signer.protection(b"55.5")  # the exact bytes of the request's value member
    st, b = app.call("POST", "/api/v1/control-values", {"dataId": "P007", "value": 55.5, "protection": prot})
    check("a control that succeeds", st == 200, (st, b))
    ok_req = (b or {}).get("requestId")
    st, b = app.call("POST", "/api/v1/control-values", {"dataId": "P010", "value": "AUTO"})
    check("a control the gateway fails (502 E4003)", st == 502, (st, b))
    gw.send_signal(signal.SIGTERM)
    gw.communicate(timeout=20)

    def alarm_id():
        st, b = opadm.call("GET", "/admin/v1/alarms?operator=demo&rule=gateway-offline")
        items = [a for a in (b or {}).get("alarms", []) if a.get("subject") == "GW002"] if st == 200 else []
        return items[0]["alarmId"] if items else None
    check("the gateway-offline alarm is raised", wait_until(lambda: alarm_id() is not None, timeout=20))
    aid = alarm_id()
    st, b = opadm.call("POST", "/admin/v1/alarms/%s/ack" % aid, {"comment": "looking"})
    check("the operator's admin acknowledges it", st == 200, (st, b))
    st, _ = report(opadm, **{"from": rfc(t0), "to": rfc(time.time()), "operator": "other"})
    check("an operator admin asking for another operator's report: 403", st == 403, st)

    def refusal_stored():  # fire and forget: stored just after its answer
        st, b = auditor.call("GET", "/admin/v1/audit/events?operator=other&kind=admin&actor=demoadm")
        return st == 200 and len(b["items"]) >= 1
    check("the refusal is in the audit trail", wait_until(refusal_stored, timeout=10))
    t1 = time.time()

    # 2. the report from the API (the auditor)
    win = {"from": rfc(t0), "to": rfc(t1), "operator": "demo"}
    st, body = report(auditor, **win)
    check("the auditor's report: 200 JSON", st == 200, st)
    js = json.loads(body)
    conns = js["connections"]["items"]
    gwc = [(c["kind"], c["action"], c.get("reason")) for c in conns if c["target"] == "gateway:GW002"]
    check("connections: GW002 online (connect) then offline (disconnect)",
          ("alive", "online", "connect") in gwc and ("alive", "offline", "disconnect") in gwc, gwc)
    reqs = js["requests"]["items"]
    kinds = sorted((q["kind"], q["state"]) for q in reqs)
    # (the immediate requests made before the gateway was up failed: E4001, it was not connected)
    check("requests: the immediate one that succeeded and two controls, with their outcomes",
          [k for k in kinds if k[0] == "control"] == [("control", "failed"), ("control", "succeeded")] and
          ("immediate", "succeeded") in kinds and
          all(q.get("errorCode") for q in reqs if q["state"] == "failed"), reqs)
    ctr = {c["dataId"]: c for c in js["controls"]["items"]}
    check("controls: P007 = 55.5 from APP001 to GW002, succeeded, its signature verified",
          ctr.get("P007", {}).get("value") == 55.5 and ctr["P007"]["app"] == "APP001" and
          ctr["P007"]["gateway"] == "GW002" and ctr["P007"]["state"] == "succeeded" and
          ctr["P007"]["signature"] == "verified" and ctr["P007"]["requestId"] == ok_req, ctr)
    check("controls: P010 = AUTO failed E4003, signature none",
          ctr.get("P010", {}).get("value") == "AUTO" and ctr["P010"]["state"] == "failed" and
          ctr["P010"].get("errorCode") == "E4003" and ctr["P010"]["signature"] == "none", ctr)
    steps = [(a["step"], a["rule"], a["subject"]) for a in js["alarms"]["items"]]
    check("alarms: raised (by the rule) and acknowledged (by demoadm)",
          steps[:2] == [("raised", "gateway-offline", "GW002"), ("acknowledged", "gateway-offline", "GW002")] and
          js["alarms"]["items"][1]["by"] == "demoadm", js["alarms"]["items"])
    check("no refusal of demo: the 403 was of operator other", js["refusals"]["items"] == [], js["refusals"])
    vals = {v["dataId"]: v for v in js["values"]["items"]}
    check("values: the points the requests named (P006, P007, P010)", sorted(vals) == ["P006", "P007", "P010"],
          sorted(vals))
    st, b = app.call("GET", "/api/v1/stored-values?dataId=P007&from=%s&to=%s" % (rfc(t0), rfc(t1 + 0.001)))
    stored = [v["value"] for v in (b or {}).get("values", [])] if st == 200 else None
    got = [v[1] for v in vals.get("P007", {}).get("values", [])]
    check("values: P007's are its stored values of the window (raw)",
          stored is not None and got == stored and vals["P007"]["mode"] == "raw" and len(got) >= 1, (got, stored, b))
    st, b = report(auditor, **{"from": rfc(t0), "to": rfc(t1), "operator": "other"})
    check("the other operator's report holds its refusal (the 403)",
          st == 200 and any(r["kind"] == "admin" and r["actor"] == "demoadm" for r in json.loads(b)["refusals"]["items"]),
          b[:300])

    # 3. the CLI: the same bytes
    r = cli("--from", rfc(t0), "--to", rfc(t1), "--operator", "demo")
    check("suiro report incident: exit 0 and the API's JSON byte for byte",
          r.returncode == 0 and r.stdout.rstrip("\n").encode() == body, (r.returncode, r.stderr))
    env = dict(os.environ, SUIRO_URL="http://127.0.0.1:%d" % hp, SUIRO_TOKEN=auditor.token)
    r = subprocess.run([BIN, "admin", "report", "--query", urllib.parse.urlencode(win)], capture_output=True,
                       text=True, env=env)
    check("suiro admin report: the same report", r.returncode == 0 and json.loads(r.stdout) == js, (r.returncode, r.stderr[-800:]))

    # 4. HTML
    st, page = report(auditor, format="html", **win)
    page = page.decode()
    check("format=html: one page with every section",
          st == 200 and page.startswith("<!DOCTYPE html>") and
          all('<section id="%s"' % s in page for s in ("timeline", "values", "connections", "requests", "controls",
                                                       "alarms", "refusals", "changes")), page[:200])
    check("... no script, no URL", "<script" not in page and "http://" not in page and "https://" not in page)
    out = os.path.join(T, "r.html")
    r = cli("--from", rfc(t0), "--to", rfc(t1), "--operator", "demo", "--format", "html", "-o", out)
    check("the CLI's page is the API's", r.returncode == 0 and open(out).read() == page, r.stderr)

    # 5. who may read it
    st, b = report(opadm, **{"from": rfc(t0), "to": rfc(t1)})
    check("an operator admin: its own operator's by default",
          st == 200 and json.loads(b)["filter"].get("operator") == "demo", (st, b[:200]))
    st, b = report(viewer, **win)
    check("a user without audit.read: 403 E2003", st == 403 and b"E2003" in b, (st, b))

    # 6. bad input
    for name, params, want, field in (
            ("from after to", {"from": rfc(t1), "to": rfc(t0)}, 400, b"from"),
            ("a bad time", {"from": "yesterday", "to": rfc(t1)}, 400, b"from"),
            ("no to", {"from": rfc(t0)}, 400, b"to"),
            ("an unknown point", {"from": rfc(t0), "to": rfc(t1), "operator": "demo", "point": "NOPE"}, 404, b"NOPE"),
            ("an unknown operator", {"from": rfc(t0), "to": rfc(t1), "operator": "nobody"}, 404, b"nobody"),
            ("a bad format", {"from": rfc(t0), "to": rfc(t1), "format": "pdf"}, 400, b"format")):
        st, b = report(auditor, **params)
        check("API, %s: %d naming it" % (name, want), st == want and field in b, (st, b))
    for name, args, word in (("from after to", ["--from", rfc(t1), "--to", rfc(t0)], "after"),
                             ("a bad time", ["--from", "yesterday", "--to", "now"], "yesterday"),
                             ("an unknown point", ["--from", "-1h", "--to", "now", "--operator", "demo",
                                                   "--point", "NOPE"], "NOPE"),
                             ("an unknown operator", ["--from", "-1h", "--to", "now", "--operator", "nobody"],
                              "nobody")):
        r = cli(*args)
        check("CLI, %s: exit 2 naming it" % name, r.returncode == 2 and word in r.stderr and not r.stdout,
              (r.returncode, r.stderr))
    stop_server(server)
except Exception as e:  # noqa: BLE001
    check.failed(e)
finish(check, T, procs)
