#!/usr/bin/python3
"""tests/integration/test_audit_refusals.py -- refused writes and controls of
AP-IF and GW-IF are in the audit trail (issue #18, R-SE-5; api/access.h
sr_access_refused, engine/audit.c kind "refused", docs/audit.md
"Refusals"), end to end with the real `suiro` and keys made by `openssl`:

 1. An E5001 control: APPX's control of PX1 whose signature does not verify
    (422 E5001) is a `refused` row: actor APPX (app), target app:APPX,
    outcome E5001, the route, the data point PX1, the app's address.
 2. An E5003 gateway value: GWX's signed value of PX1 naming a certificate
    not registered (another serial) over MQTT (PUBACK 0x99) and over GW-IF
    HTTP (422) are `refused` rows: actor GWX, outcome E5003, the routes
    (PUBLISH data/measurements, POST /gw/v1/measurements), PX1.
 3. An authorization refusal of a write: APPX's control of a point it may not
    control (403 E2003) is a `refused` row with outcome E2003.
 4. The bound: 40 refused messages (E1001) sent at once by GWX list at most
    [audit] refusals_per_batch (16 here) per row; the rest are counted in
    the row ("+N more ... not listed"): listed + counted == 40, nothing
    lost from the count.
 5. Nothing of the refused messages is stored (the `write` rows do not
    name them) and `kind=refused` lists only refusals.
usage: test_audit_refusals.py SUIRO_BIN"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-auditrefused-")
D = os.path.join(T, "data")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srtest  # noqa: E402
from srtest import (OTHER_OPERATOR_SHEET, Api, Checks, RawGw, admin_new_user, admin_session, code, finish,  # noqa: E402
                    import_sheet, init_with_admins, start_server, stop_server, wait_until)

check = Checks()
server = None
EV = "/admin/v1/audit/events"
N_FLOOD = 40
PER_BATCH = 16


def rows(api, **params):
    st, b = api.call("GET", EV + "?" + urllib.parse.urlencode(params))
    assert st == 200, (st, b)
    return b["items"]


def until(api, pred, **params):
    last = [[]]

    def probe():
        last[0] = rows(api, **params)
        return pred(last[0])
    wait_until(probe, timeout=15)
    return last[0]


def env(mid, body_text, prot=None):
    e = '{"header":{"messageType":"GW_MEASUREMENTS","messageId":"%s","timestamp":"2026-11-22T00:00:00.000Z"},' \
        '"body":%s' % (mid, body_text)
    return e + (',"protection":%s}' % json.dumps(prot) if prot else "}")


def listed(r):
    m = re.match(r"(\d+) refused", r.get("detail", ""))
    return int(m.group(1)) if m else 0


def dropped(r):
    m = re.search(r"\(\+(\d+) more", r.get("detail", ""))
    return int(m.group(1)) if m else 0


try:
    temp, temp2 = init_with_admins(BIN, D)
    import_sheet(BIN, D, os.path.join(T, "other.csv"), OTHER_OPERATOR_SHEET +
                 "\n[datapoints]\nid,device,name,type,unit,min,max,kind\nPX2,DX,Other valve,number,%,0,100,both\n")
    app_key = srtest.OpensslSigner("APPX", 0x21, T, alg="ES256")
    gw_key = srtest.OpensslSigner("GWX", 0x22, T, alg="ES384")
    for flag, who, key in (("--app", "APPX", app_key), ("--gateway", "GWX", gw_key)):
        pem = os.path.join(T, who + ".pem")
        open(pem, "w").write(key.pem)
        r = subprocess.run([BIN, "cert", "import", D, "--operator", "other", flag, who, "--pem", pem],
                           capture_output=True, text=True)
        check("%s's certificate (openssl) registered" % who, r.returncode == 0, r.stderr)
    cfg = os.path.join(T, "suiro.ini")
    open(cfg, "w").write("[engine]\ndata_dir = %s\n[mqtt]\nlisten = 127.0.0.1:0\n[http]\nlisten = 127.0.0.1:0\n"
                         "[audit]\nflush_ms = 500\nrefusals_per_batch = %d\n" % (D, PER_BATCH))
    server, ports = start_server(BIN, D, os.path.join(T, "server.log"), config=cfg, until="mqtt")
    if "http" not in ports:
        wait_until(lambda: "http" in ports, timeout=10)
    hp, mp = ports["http"], ports["mqtt"]
    root = admin_session(hp, "admin", temp, "platform-admin-pw-1")
    root2 = admin_session(hp, "admin2", temp2, "platform-admin-pw-2")
    aud = admin_new_user(hp, root, "aud", "platform", None, ["auditor"], "auditor-password-1", approver=root2)
    t0 = int(time.time() * 1000)

    # 1. an E5001 control
    app = Api(hp)
    check("APPX logs in", app.login("APPX", "other", "other-app-secret") == 201)
    body = '{"dataId": "PX1", "value": 43, "timeoutMs": 2000, "protection": %s}' % json.dumps(
        app_key.protection(b"42"))
    st, b = app.call("POST", "/api/v1/control-values", body)
    check("APPX's control of PX1 signed over another value: 422 E5001", st == 422 and code(b) == "E5001", (st, b))
    its = until(aud, lambda x: any(r["outcome"] == "E5001" for r in x), kind="refused", actor="APPX",
                **{"from": t0})
    r = next((r for r in its if r["outcome"] == "E5001"), {})
    check("the E5001 control is a refused row: actor APPX (app), operator other, target app:APPX",
          r.get("kind") == "refused" and r.get("actorKind") == "app" and r.get("operator") == "other"
          and r.get("target") == "app:APPX", json.dumps(its, indent=1))
    check("... what: POST /api/v1/control-values, data point PX1",
          "POST /api/v1/control-values" in r.get("action", "") and "PX1" in r.get("detail", ""), r)
    check("... from where: the app's address", r.get("source", "").startswith("127.0.0.1"), r)
    check("... listed by its outcome too (outcome E5001 of kind refused)", listed(r) == 1, r)

    # 3. an authorization refusal of a control (no grant on PX2)
    st, b = app.call("POST", "/api/v1/control-values", {"dataId": "PX2", "value": 1, "timeoutMs": 2000})
    check("APPX's control of PX2 (no grant): 403 E2003", st == 403 and code(b) == "E2003", (st, b))
    its = until(aud, lambda x: any(r["outcome"] == "E2003" for r in x), kind="refused", actor="APPX",
                **{"from": t0})
    r = next((r for r in its if r["outcome"] == "E2003"), {})
    check("the unauthorized control is a refused row, outcome E2003, naming PX2",
          r.get("target") == "app:APPX" and "PX2" in r.get("detail", ""), json.dumps(its, indent=1))

    # 2. an E5003 gateway value, over MQTT and over HTTP
    g = RawGw(mp, "other", "GWX", "other-gw-secret", v5=True)
    check("GWX connects over MQTT 5", g.connack == 0, g.connack)
    vb = '{"values":[{"dataId":"PX1","timestamp":"2026-11-22T00:00:01.000Z","value":12.5}]}'
    prot = dict(gw_key.protection(vb.encode()), certId="GWX#99")
    rc = g.publish_wait("data/measurements", env("e5003-m", vb, prot))
    check("GWX's value of PX1 signed under an unknown certId (MQTT): PUBACK 0x99", rc == 0x99, rc)
    gh = Api(hp)
    st, b = gh.call("POST", "/gw/v1/sessions", {"operatorId": "other", "gatewayId": "GWX", "secret": "other-gw-secret"})
    gh.token = b.get("token") if isinstance(b, dict) else None
    st, b = gh.call("POST", "/gw/v1/measurements", env("e5003-h", vb, prot))
    check("... over GW-IF HTTP: 422 E5003", st == 422 and code(b) == "E5003", (st, b))

    def both(x):
        acts = " ".join(r["action"] for r in x if r["outcome"] == "E5003")
        return "PUBLISH data/measurements" in acts and "POST /gw/v1/measurements" in acts
    its = until(aud, both, kind="refused", actor="GWX", **{"from": t0})
    e3 = [r for r in its if r["outcome"] == "E5003"]
    check("the E5003 values are refused rows (MQTT and HTTP): actor GWX (gateway), target gateway:GWX",
          both(its) and all(r["actorKind"] == "gateway" and r["target"] == "gateway:GWX" for r in e3),
          json.dumps(its, indent=1))
    check("... naming the data point PX1, from the gateway's address",
          e3 and all("PX1" in r["detail"] and r["source"].startswith("127.0.0.1") for r in e3), e3)
    check("... 2 refusals listed in all", sum(listed(r) for r in e3) == 2, e3)

    # 4. the bound: 40 refused at once
    bad = '{"values":[{"dataId":"PX1","timestamp":"2026-11-22T00:00:02.000Z","value":"not a number"}]}'
    g.s.sendall(b"".join(srtest.mqtt_publish(g.root + "/data/measurements", env("bad-%d" % i, bad), 100 + i, 1, True)
                         for i in range(N_FLOOD)))
    n = 0
    while n < N_FLOOD:
        t, pk = srtest.mqtt_read(g.s)
        n += t == 4
    check("40 values of the wrong type: 40 PUBACKs", n == N_FLOOD)

    def flood(x):
        return sum(listed(r) + dropped(r) for r in x if r["outcome"] == "E1001") >= N_FLOOD
    its = [r for r in until(aud, flood, kind="refused", actor="GWX", **{"from": t0}) if r["outcome"] == "E1001"]
    check("every row lists at most refusals_per_batch (%d) refusals" % PER_BATCH,
          its and all(listed(r) <= PER_BATCH for r in its), json.dumps(its, indent=1))
    check("listed + counted as not listed == 40 (each one accounted for)",
          sum(listed(r) + dropped(r) for r in its) == N_FLOOD, [(listed(r), dropped(r)) for r in its])
    check("the bound was used (some were counted, not listed: fewer rows than refusals)",
          sum(dropped(r) for r in its) > 0 and len(its) < N_FLOOD, [(listed(r), dropped(r)) for r in its])
    g.close()

    # 5. only refusals under kind=refused; nothing of them written
    its = rows(aud, kind="refused", **{"from": t0})
    check("kind=refused lists only refused rows, each with a wire code as outcome",
          its and all(r["kind"] == "refused" and re.match(r"^E\d{4}$", r["outcome"]) for r in its), its)
    w = rows(aud, kind="write", actor="GWX", **{"from": t0})
    check("no write row of GWX (nothing of its refused messages stored)", w == [], w)
finally:
    if server is not None:
        rc = stop_server(server)
        check("SIGTERM stops the server cleanly (exit 0)", rc == 0, rc)
    finish(check, T, [server])
