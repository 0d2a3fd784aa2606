#!/usr/bin/python3
"""tests/integration/test_signatures.py -- data protection between apps and
gateways (R-SE-3, docs/signatures.md) through the real `suiro serve`, with
real keys and certificates (srtest.Signer, python3-cryptography) registered
by `suiro cert import`:
  - a signed control request (AP-IF) reaches the gateway (MQTT) with the
    app's protection exactly as sent and signedValue the bytes it signs;
  - the gateway's signed control result reaches the app with its protection
    and the exact signed body (the app verifies it with the gateway's key);
  - a tampered control request is 422 E5001, another app's certId and an
    expired certificate are E5003, and nothing reaches the gateway;
  - gateway measurements with a tampered signature are refused E5001 in the
    GW_ACK (MQTT) and the HTTP answer, nothing stored; signed ones with
    whitespace inside body are stored;
  - a certificate revoked through the admin API while the app and the
    gateway are connected is E5003 at the next message; withdrawn, it
    verifies again.
Ports are chosen at run time, the server is stopped by its PID, every wait
is bounded. usage: test_signatures.py SUIRO_BIN"""
import json
import os
import shutil
import sys
import tempfile
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srtest  # noqa: E402
import test_requests as tr  # noqa: E402  (its main is guarded)

shutil.rmtree(tr.T, ignore_errors=True)
BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-signatures-")
tr.T, tr.D, tr.LOG = T, os.path.join(T, "data"), os.path.join(T, "server.log")
check = srtest.Checks()
ADMIN_PW = "signatures-admin-pw-0001"

app_key = srtest.Signer("APP001", 0x1A)
gw_key = srtest.Signer("GW002", 0x2B, alg="ES384")
other_key = srtest.Signer("APP001", 0x1B)           # not the registered one
stale_key = srtest.Signer("GW001", 0x3C, days=-1)     # expired, registered for GW001


def cert_import(kind, who, signer):
    f = os.path.join(T, "%s.pem" % who)
    with open(f, "w") as fh:
        fh.write(signer.pem)
    r = tr.subprocess.run([BIN, "cert", "import", tr.D, "--operator", "demo", "--" + kind, who, "--pem", f],
                          capture_output=True, text=True)
    check("cert import %s %s" % (kind, who), r.returncode == 0, r.stderr)


def control_raw(app, value_text, prot, data_id="P007", timeout_ms=5000):
    """POST /api/v1/control-values with value written exactly as value_text."""
    body = '{"dataId": "%s", "value": %s, "timeoutMs": %d, "protection": %s}' % (data_id, value_text, timeout_ms,
                                                                                 json.dumps(prot))
    st, r, data, _ = srtest.http_once(tr.PORTS["http"], "POST", "/api/v1/control-values", body, app.token,
                                      {"Content-Type": "application/json"}, timeout=20)
    try:
        return st, json.loads(data)
    except ValueError:
        return st, data


def gw_raw(gw, suffix, mtype, body_text, prot_of=None):
    """Publish an envelope whose body member is body_text byte for byte;
    prot_of(body bytes) -> protection (None: none). Its GW_ACK result."""
    mid = tr.new_mid("sg")
    env = '{"header":{"messageType":"%s","messageId":"%s","timestamp":"%s"},"body":%s' % (mtype, mid, tr.ts(),
                                                                                         body_text)
    if prot_of:
        env += ',"protection":%s' % json.dumps(prot_of(body_text.encode()))
    env += "}"
    gw.c.publish(gw.root + "/" + suffix, env, qos=1)
    return gw.ack(mid)


def case_control(app, g2):
    g2.mode = "silent"
    prot = app_key.protection(b"42.5")
    marks = len(g2.pushed())
    import threading
    out = {}
    th = threading.Thread(target=lambda: out.update(r=control_raw(app, "42.5", prot)))
    th.start()
    req = g2.wait_pushed(lambda r: r.get("type") == "CONTROL" and r.get("value") == 42.5)
    check("signed control: the gateway gets the app's protection exactly as sent",
          req is not None and req.get("protection") == prot, req)
    check("signed control: ... and signedValue, the bytes it signs", (req or {}).get("signedValue") == "42.5", req)
    check("signed control: the gateway can verify it with the app's key",
          req is not None and app_key.verify(req["protection"]["signature"], req["signedValue"].encode()))
    # the gateway answers, signed over its body's exact bytes (spaces kept)
    body = '{ "requestId": "%s", "dataId": "P007",  "appliedValue": 42.5, "result": "0" }' % (req or {}).get("requestId")
    gprot = {}
    ack = gw_raw(g2, "ack/control", "GW_CONTROL_RESULT", body, lambda b: gprot.update(gw_key.protection(b)) or gprot)
    check("signed control result: acknowledged 0", (ack or {}).get("code") == "0", ack)
    th.join(20)
    st, js = out.get("r", (None, None))
    gp = (js or {}).get("gatewayProtection") if isinstance(js, dict) else None
    check("signed control: 200 with appliedValue 42.5", st == 200 and js.get("appliedValue") == 42.5, (st, js))
    check("signed control: the app gets the gateway's protection and the exact signed body",
          isinstance(gp, list) and len(gp) == 1 and gp[0].get("protection") == gprot and gp[0].get("signedBody") == body
          and gp[0].get("gatewayId") == "GW002", gp)
    check("signed control: the app can verify the gateway's signature",
          bool(gp) and gw_key.verify(gp[0]["protection"]["signature"], gp[0]["signedBody"].encode()))
    # refusals: nothing reaches the gateway
    st, js = control_raw(app, "43", prot)
    check("tampered control (value 43 under 42.5's signature): 422 E5001", st == 422 and tr.code_of(js) == "E5001",
          (st, js))
    st, js = control_raw(app, "42.5", other_key.protection(b"42.5"))
    check("control signed with a certificate not registered: 422 E5003", st == 422 and tr.code_of(js) == "E5003",
          (st, js))
    p = app_key.protection(b"42.5")
    p["certId"] = "GW002#2B"
    st, js = control_raw(app, "42.5", p)
    check("control naming another principal's certificate: 422 E5003", st == 422 and tr.code_of(js) == "E5003",
          (st, js))
    p = app_key.protection(b"42.5")
    p["signAlg"] = "HS256"
    st, js = control_raw(app, "42.5", p)
    check("control with an unknown signAlg: 422 E5001", st == 422 and tr.code_of(js) == "E5001", (st, js))
    check("no refused control reached the gateway",
          len([r for r in g2.pushed()[marks:] if r.get("type") == "CONTROL"]) == 1, g2.pushed()[marks:])


def case_measurements(app, g1, g2):
    body = '{"values": [ {"dataId":"P006", "timestamp":"%s", "value": 3.25} ]}' % tr.ts()
    ack = gw_raw(g2, "data/measurements", "GW_MEASUREMENTS", body, gw_key.protection)
    check("signed measurements (spaces inside body): acknowledged 0", (ack or {}).get("code") == "0", ack)
    check("... and stored", app.wait_latest("P006", 3.25)[1] == 3.25)
    bad = body.replace("3.25", "9.25")
    ack = gw_raw(g2, "data/measurements", "GW_MEASUREMENTS", bad, lambda b: gw_key.protection(body.encode()))
    check("tampered measurements: GW_ACK E5001", (ack or {}).get("code") == "E5001", ack)
    squeezed = body.replace(" ", "")
    ack = gw_raw(g2, "data/measurements", "GW_MEASUREMENTS", squeezed, lambda b: gw_key.protection(body.encode()))
    check("measurements whose body was re-spaced after signing: GW_ACK E5001", (ack or {}).get("code") == "E5001", ack)
    body1 = '{"values":[{"dataId":"P001","timestamp":"%s","value":1.5}]}' % tr.ts()
    ack = gw_raw(g1, "data/measurements", "GW_MEASUREMENTS", body1, stale_key.protection)
    check("measurements signed with an expired certificate: GW_ACK E5003", (ack or {}).get("code") == "E5003", ack)
    # the HTTP binding
    st, js, _, _ = tr.http_call("POST", "/gw/v1/sessions", {"operatorId": "demo", "gatewayId": "GW002",
                                                             "secret": tr.SECRETS["GW002"]})
    tok = (js or {}).get("token")
    env = '{"header":{"messageType":"GW_MEASUREMENTS","messageId":"%s","timestamp":"%s"},"body":%s,"protection":%s}'
    st, _, data, _ = srtest.http_once(tr.PORTS["http"], "POST", "/gw/v1/measurements",
                                      env % (tr.new_mid("h"), tr.ts(), bad, json.dumps(gw_key.protection(body.encode()))),
                                      tok, {"Content-Type": "application/json"})
    check("tampered measurements over HTTP: 422 E5001", st == 422 and b"E5001" in data, (st, data))
    check("nothing of the refused messages was stored", app.latest("P006")[1] == 3.25 and app.latest("P001")[1] != 1.5,
          (app.latest("P006"), app.latest("P001")))
    good = '{"values":[{"dataId":"P006","timestamp":"%s","value":4.5}]}' % tr.ts()
    st, _, data, _ = srtest.http_once(tr.PORTS["http"], "POST", "/gw/v1/measurements",
                                      env % (tr.new_mid("h"), tr.ts(), good, json.dumps(gw_key.protection(good.encode()))),
                                      tok, {"Content-Type": "application/json"})
    check("signed measurements over HTTP: 200", st == 200, (st, data))


def case_required(app, g2, admin):
    st, js = admin.call("PUT", "/admin/v1/operators/demo/apps/APP001", {"requireSignature": True})
    check("require APP001 to sign (admin API): 200", st == 200, (st, js))
    st, js = admin.call("GET", "/admin/v1/operators/demo/apps")
    row = [i for i in (js or {}).get("items", []) if i.get("id") == "APP001"]
    check("... the app's row says so, and keeps its certificate",
          row and row[0].get("requireSignature") is True and row[0].get("certificate") is True, row)
    st, js = app.post("/api/v1/control-values", {"dataId": "P007", "value": 10})
    check("required signature missing: 422 E5001", st == 422 and tr.code_of(js) == "E5001", (st, js))
    g2.mode = "ok"
    st, js = control_raw(app, "12", app_key.protection(b"12"))
    check("required signature present: 200", st == 200, (st, js))
    st, js = admin.call("PUT", "/admin/v1/operators/demo/apps/APP001", {"requireSignature": False})
    st, js = app.post("/api/v1/control-values", {"dataId": "P007", "value": 11})
    check("no longer required: an unsigned control is 200 again", st == 200, (st, js))


def case_revocation(app, g2, admin):
    st, js = admin.call("POST", "/admin/v1/operators/demo/revocations", {"certId": "APP001#001a", "reason": "lost"})
    check("revoke APP001#1A through the admin API: 201 (canonical certId)",
          st == 201 and js.get("certId") == "APP001#1A", (st, js))
    st, js = control_raw(app, "42.5", app_key.protection(b"42.5"))
    check("control signed with the revoked certificate: 422 E5003", st == 422 and tr.code_of(js) == "E5003", (st, js))
    st, js = admin.call("POST", "/admin/v1/operators/demo/revocations", {"certId": "GW002#2B", "reason": "stolen"})
    check("revoke GW002#2B: 201", st == 201, (st, js))
    body = '{"values":[{"dataId":"P006","timestamp":"%s","value":5.5}]}' % tr.ts()
    ack = gw_raw(g2, "data/measurements", "GW_MEASUREMENTS", body, gw_key.protection)
    check("measurements signed with the revoked certificate (still connected): GW_ACK E5003",
          (ack or {}).get("code") == "E5003", ack)
    st, js = admin.call("GET", "/admin/v1/operators/demo/revocations")
    ids = sorted(i.get("certId") for i in (js or {}).get("items", []))
    check("the revocation list names both", st == 200 and ids == ["APP001#1A", "GW002#2B"], (st, js))
    st, js = admin.call("POST", "/admin/v1/operators/demo/revocations", {"certId": "APP001", "reason": "x"})
    check("a certId without serial: 400 E1001", st == 400 and tr.code_of(js) == "E1001", (st, js))
    st, _ = admin.call("DELETE", "/admin/v1/operators/demo/revocations/GW002/2b")
    check("withdraw GW002#2B: 204", st == 204, st)
    ack = gw_raw(g2, "data/measurements", "GW_MEASUREMENTS", body, gw_key.protection)
    check("withdrawn: the gateway's signed measurements are stored again", (ack or {}).get("code") == "0", ack)


try:
    pw, pw2 = srtest.init_with_admin(BIN, tr.D, demo=True, second="admin2")
    cert_import("app", "APP001", app_key)
    cert_import("gateway", "GW002", gw_key)
    cert_import("gateway", "GW001", stale_key)
    tr.start_server()
    root = srtest.admin_session(tr.PORTS["http"], "admin", pw, ADMIN_PW)
    second = srtest.admin_session(tr.PORTS["http"], "admin2", pw2, ADMIN_PW + "-2") if pw2 else None
    # the operator's admin (setup.manage of operator demo)
    admin = srtest.admin_new_user(tr.PORTS["http"], root, "opa", "operator", "demo", ["operator_admin"],
                                  ADMIN_PW + "-opa", second)
    app = tr.App(*tr.APP)
    check("app login", app.login()[0] == 201)
    g1 = tr.Gateway("GW001")
    g2 = tr.Gateway("GW002")
    check("gateways connected", g1.connack == 0 and g2.connack == 0, (g1.connack, g2.connack))
    for name, fn in (("control", lambda: case_control(app, g2)), ("measurements", lambda: case_measurements(app, g1, g2)),
                     ("required", lambda: case_required(app, g2, admin)),
                     ("revocation", lambda: case_revocation(app, g2, admin))):
        print("--", name, flush=True)
        try:
            fn()
        except Exception:
            check(name + " (ran to the end)", False, traceback.format_exc())
finally:
    for g in tr.GATEWAYS:
        try:
            g.c.disconnect()
            g.c.loop_stop()
        except Exception:
            pass
    if tr.server is not None:
        rc = tr.stop_server()
        check("SIGTERM stops the server cleanly (exit 0)", rc == 0, rc)
    srtest.finish(check, T, [])
