#!/usr/bin/python3
"""tests/integration/test_signatures_values.py -- issue #18 (R-SE-3,
docs/signatures.md): a gateway's signed values and signed control of data
points, through the real `suiro serve`, with keys and certificates made by
the `openssl` command (srtest.OpensslSigner), registered and replaced
through the admin API while the gateway stays connected:
  - for every signature algorithm of the table (ES256, ES384, PS256, EdDSA):
    signed GW_MEASUREMENTS over MQTT (GW_ACK 0) and HTTP (200) are stored;
    a changed byte of body is E5001 (MQTT and HTTP), a signature by another
    key under the registered certId is E5001, nothing of them stored;
  - a certificate replaced by one of the same serial and another key: the
    old key's signature is E5001 at the next message, the new one's stored
    (the parsed-certificate cache never serves the replaced certificate);
  - an expired certificate, an unknown certId (another serial), a revoked
    certificate: E5003; the refusal is logged
    ("gateway message refused: protection");
  - the verification state is stored and passed on: the push of a
    monitor's signed GW_PERIODIC_DATA carries "gatewaySigned": true (ext),
    an unsigned one does not;
  - signed control (AP-IF) for every algorithm of the table: the gateway
    gets the app's protection and signedValue, a changed value is E5001;
  - signatures required per data point (admin API
    /signature-requirements/{dataId}, setup.manage): an unsigned control of
    such a point is 422 E5001 and never reaches the gateway, a signed one
    goes through, lifting it accepts
    unsigned control again; the requirement is listed, and written to the
    audit trail (registry row) with who and from where.
Ports are chosen at run time, the server is stopped by its PID, every wait
is bounded. usage: test_signatures_values.py SUIRO_BIN"""
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
T = tempfile.mkdtemp(prefix="suiro-sigvalues-")
tr.T, tr.D, tr.LOG = T, os.path.join(T, "data"), os.path.join(T, "server.log")
check = srtest.Checks()
ADMIN_PW = "sigvalues-admin-pw-0001"
ALGS = ("ES256", "ES384", "PS256", "EdDSA")


def gw_raw(gw, suffix, mtype, body_text, prot=None):
    """Publish an envelope whose body member is body_text byte for byte, with
    protection prot (None: none). Its GW_ACK result."""
    mid = tr.new_mid("sv")
    env = '{"header":{"messageType":"%s","messageId":"%s","timestamp":"%s"},"body":%s' % (mtype, mid, tr.ts(),
                                                                                         body_text)
    if prot is not None:
        env += ',"protection":%s' % json.dumps(prot)
    env += "}"
    gw.c.publish(gw.root + "/" + suffix, env, qos=1)
    return gw.ack(mid) or {}


class GwHttp:
    def __init__(self, gw):
        st, js, _, _ = tr.http_call("POST", "/gw/v1/sessions", {"operatorId": "demo", "gatewayId": gw,
                                                                 "secret": tr.SECRETS[gw]})
        self.token = (js or {}).get("token")
        check("%s: GW-IF HTTP login" % gw, st == 201 and self.token, (st, js))

    def post(self, path, mtype, body_text, prot):
        env = '{"header":{"messageType":"%s","messageId":"%s","timestamp":"%s"},"body":%s,"protection":%s}' % (
            mtype, tr.new_mid("h"), tr.ts(), body_text, json.dumps(prot))
        st, _, data, _ = srtest.http_once(tr.PORTS["http"], "POST", path, env, self.token,
                                          {"Content-Type": "application/json"})
        return st, data


def put_cert(admin, gw, signer):
    st, js = admin.call("PUT", "/admin/v1/operators/demo/gateways/%s/certificate" % gw, signer.pem)
    check("%s's certificate %s (%s, openssl) registered through the admin API" % (gw, signer.cert_id, signer.alg),
          st in (200, 204), (st, js))


def body_of(value):
    return '{"values": [ {"dataId": "P006", "timestamp": "%s", "value": %s} ]}' % (tr.ts(), value)


def case_algorithms(app, g2, admin, gh):
    for n, alg in enumerate(ALGS):
        key = srtest.OpensslSigner("GW002", 0x40 + n, T, alg=alg)
        os.makedirs(T + "/w", exist_ok=True)
        wrong = srtest.OpensslSigner("GW002", 0x40 + n, T + "/w", alg=alg)  # the same certId, another key
        put_cert(admin, "GW002", key)
        v = 1.25 + n  # P006: 0..12.5
        body = body_of(v)
        ack = gw_raw(g2, "data/measurements", "GW_MEASUREMENTS", body, key.protection(body.encode()))
        check("%s: signed measurements over MQTT: GW_ACK 0" % alg, ack.get("code") == "0", ack)
        check("%s: ... stored" % alg, app.wait_latest("P006", v)[1] == v, app.latest("P006"))
        changed = body.replace("%s}" % v, "%s}" % (v + 1))
        ack = gw_raw(g2, "data/measurements", "GW_MEASUREMENTS", changed, key.protection(body.encode()))
        check("%s: a changed byte of body (MQTT): GW_ACK E5001" % alg, ack.get("code") == "E5001", ack)
        body2 = body_of(v + 2)
        ack = gw_raw(g2, "data/measurements", "GW_MEASUREMENTS", body2, wrong.protection(body2.encode()))
        check("%s: signed by another key under the registered certId (MQTT): GW_ACK E5001" % alg,
              ack.get("code") == "E5001", ack)
        st, data = gh.post("/gw/v1/measurements", "GW_MEASUREMENTS", changed, key.protection(body.encode()))
        check("%s: a changed byte of body (HTTP): 422 E5001" % alg, st == 422 and b"E5001" in data, (st, data))
        check("%s: nothing of the refused messages stored" % alg, app.latest("P006")[1] == v, app.latest("P006"))
        v3 = v + 0.5
        body3 = body_of(v3)
        st, data = gh.post("/gw/v1/measurements", "GW_MEASUREMENTS", body3, key.protection(body3.encode()))
        check("%s: signed measurements over HTTP: 200, stored" % alg,
              st == 200 and app.wait_latest("P006", v3)[1] == v3, (st, data, app.latest("P006")))
    return key


def case_replaced(app, g2, admin, gh):
    a = srtest.OpensslSigner("GW002", 0x50, T, alg="ES256")
    os.makedirs(T + "/b", exist_ok=True)
    b = srtest.OpensslSigner("GW002", 0x50, T + "/b", alg="ES256")  # same serial, another key
    put_cert(admin, "GW002", a)
    body = body_of(5.5)
    check("certificate A: verified (and now parsed and kept)",
          gw_raw(g2, "data/measurements", "GW_MEASUREMENTS", body, a.protection(body.encode())).get("code") == "0")
    put_cert(admin, "GW002", b)
    body = body_of(6.5)
    ack = gw_raw(g2, "data/measurements", "GW_MEASUREMENTS", body, a.protection(body.encode()))
    check("replaced by B (same certId, another key): A's signature is E5001 at the next message",
          ack.get("code") == "E5001", ack)
    ack = gw_raw(g2, "data/measurements", "GW_MEASUREMENTS", body, b.protection(body.encode()))
    check("... B's is stored", ack.get("code") == "0" and app.wait_latest("P006", 6.5)[1] == 6.5, ack)
    st, data = gh.post("/gw/v1/measurements", "GW_MEASUREMENTS", body_of(7.5), a.protection(body_of(7.5).encode()))
    check("... A's over HTTP too: 422 E5001", st == 422 and b"E5001" in data, (st, data))
    return b


def case_certs(app, g2, admin, current):
    os.makedirs(T + "/x", exist_ok=True)
    expired = srtest.OpensslSigner("GW002", 0x60, T + "/x", alg="ES384", days=-1)
    body = body_of(8.5)
    ack = gw_raw(g2, "data/measurements", "GW_MEASUREMENTS", body, current.protection(body.encode()) |
                 {"certId": "GW002#61"})
    check("an unknown certId (a serial not registered): GW_ACK E5003", ack.get("code") == "E5003", ack)
    put_cert(admin, "GW002", expired)
    ack = gw_raw(g2, "data/measurements", "GW_MEASUREMENTS", body, expired.protection(body.encode()))
    check("an expired certificate (openssl x509 -days -1): GW_ACK E5003", ack.get("code") == "E5003", ack)
    put_cert(admin, "GW002", current)
    st, js = admin.call("POST", "/admin/v1/operators/demo/revocations", {"certId": current.cert_id, "reason": "test"})
    check("revoke %s: 201" % current.cert_id, st == 201, (st, js))
    ack = gw_raw(g2, "data/measurements", "GW_MEASUREMENTS", body, current.protection(body.encode()))
    check("a revoked certificate: GW_ACK E5003", ack.get("code") == "E5003", ack)
    check("nothing of them stored", app.latest("P006")[1] != 8.5, app.latest("P006"))
    st, _ = admin.call("DELETE", "/admin/v1/operators/demo/revocations/GW002/%X" % current.serial)
    check("revocation withdrawn: 204", st == 204, st)
    log = open(tr.LOG, errors="replace").read()
    check("the refusals are logged (gateway message refused: protection, with the code)",
          'msg="gateway message refused: protection"' in log and "code=E5003" in log and "code=E5001" in log)


def case_push(app, g2, admin, current, rcv):
    st, js = admin.call("PUT", "/admin/v1/operators/demo/apps/APP001/push-url",
                        {"pushUrl": "http://127.0.0.1:%d/hook/" % rcv.port})
    check("APP001's push URL set: 200", st in (200, 204), (st, js))
    st, js = app.post("/api/v1/monitors", {"dataIds": ["P006"], "intervalMs": 1000})
    mon = (js or {}).get("monitorId")
    check("monitor of P006 started", st == 201 and mon, (st, js))
    signed = '{"monitorId": "%s", "values": [{"dataId": "P006", "timestamp": "%s", "value": 9.5}]}' % (mon, tr.ts())
    ack = gw_raw(g2, "data/periodic", "GW_PERIODIC_DATA", signed, current.protection(signed.encode()))
    check("signed GW_PERIODIC_DATA: GW_ACK 0", ack.get("code") == "0", ack)
    unsigned = '{"monitorId": "%s", "values": [{"dataId": "P006", "timestamp": "%s", "value": 10.5}]}' % (mon, tr.ts())
    ack = gw_raw(g2, "data/periodic", "GW_PERIODIC_DATA", unsigned)
    check("unsigned GW_PERIODIC_DATA: GW_ACK 0", ack.get("code") == "0", ack)

    def bodies():
        out = []
        for r in rcv.reqs:
            if r.get("path", "").endswith("/monitors/" + mon):
                try:
                    out.append(json.loads(r["body"]))
                except (ValueError, TypeError):
                    pass
        return out
    got = tr.poll(bodies, lambda b: len(b) >= 2, timeout=10)
    by_value = {b["values"][0]["value"]: b for b in got if b.get("values")}
    check("the push of the signed values says gatewaySigned: true (ext)",
          by_value.get(9.5, {}).get("gatewaySigned") is True, got)
    check("the push of the unsigned values has no gatewaySigned", 10.5 in by_value and
          "gatewaySigned" not in by_value[10.5], got)
    app.delete("/api/v1/monitors/" + mon)


def control_raw(app, value_text, prot=None, data_id="P007"):
    body = '{"dataId": "%s", "value": %s, "timeoutMs": 5000%s}' % (
        data_id, value_text, (', "protection": %s' % json.dumps(prot)) if prot else "")
    st, _, data, _ = srtest.http_once(tr.PORTS["http"], "POST", "/api/v1/control-values", body, app.token,
                                      {"Content-Type": "application/json"}, timeout=20)
    try:
        return st, json.loads(data)
    except ValueError:
        return st, data


def case_control_algorithms(app, g2, admin):
    g2.mode = "ok"
    for n, alg in enumerate(ALGS):
        key = srtest.OpensslSigner("APP001", 0x70 + n, T, alg=alg)
        st, js = admin.call("PUT", "/admin/v1/operators/demo/apps/APP001/certificate", key.pem)
        check("APP001's certificate %s (%s, openssl) registered" % (key.cert_id, alg), st in (200, 204), (st, js))
        marks = len(g2.pushed())
        st, js = control_raw(app, "%d" % (20 + n), key.protection(b"%d" % (20 + n)))
        check("%s: signed control: 200" % alg, st == 200, (st, js))
        ctl = [r for r in g2.pushed()[marks:] if r.get("type") == "CONTROL"]
        check("%s: ... the gateway gets the app's protection and signedValue" % alg,
              len(ctl) == 1 and ctl[0].get("signedValue") == "%d" % (20 + n)
              and ctl[0].get("protection", {}).get("signAlg") == alg, ctl)
        st, js = control_raw(app, "%d" % (30 + n), key.protection(b"%d" % (20 + n)))
        check("%s: a changed value under the signature: 422 E5001" % alg, st == 422 and tr.code_of(js) == "E5001",
              (st, js))


def case_point_required(app, g2, admin):
    app_key = srtest.OpensslSigner("APP001", 0x1A, T, alg="PS256")
    st, js = admin.call("PUT", "/admin/v1/operators/demo/apps/APP001/certificate", app_key.pem)
    check("APP001's certificate (PS256, openssl) registered", st in (200, 204), (st, js))
    g2.mode = "ok"
    st, js = admin.call("PUT", "/admin/v1/operators/demo/signature-requirements/P007", {"reason": "valve"})
    check("require signed control of P007: 200", st == 200 and (js or {}).get("dataId") == "P007", (st, js))
    st, js = admin.call("PUT", "/admin/v1/operators/demo/signature-requirements/NOPE", {"reason": "x"})
    check("an unknown data point: 404 E3001", st == 404 and tr.code_of(js) == "E3001", (st, js))
    st, js = admin.call("PUT", "/admin/v1/operators/demo/signature-requirements/P007", {})
    check("no reason: 400 E1001", st == 400 and tr.code_of(js) == "E1001", (st, js))
    st, js = admin.call("GET", "/admin/v1/operators/demo/signature-requirements")
    items = (js or {}).get("items", [])
    check("listed", st == 200 and [i.get("dataId") for i in items] == ["P007"] and items[0].get("reason") == "valve"
          and items[0].get("requiredAt"), (st, js))
    marks = len(g2.pushed())
    st, js = control_raw(app, "7")
    check("unsigned control of P007: 422 E5001", st == 422 and tr.code_of(js) == "E5001", (st, js))
    st, js = control_raw(app, "8", app_key.protection(b"8"))
    check("signed control of P007: 200", st == 200, (st, js))
    ctl = [r for r in g2.pushed()[marks:] if r.get("type") == "CONTROL"]
    check("only the signed control reached the gateway, with the app's protection",
          len(ctl) == 1 and ctl[0].get("value") == 8 and ctl[0].get("protection"), ctl)
    st, js = admin.call("DELETE", "/admin/v1/operators/demo/signature-requirements/P007")
    check("lifted: 204", st == 204, (st, js))
    st, js = admin.call("DELETE", "/admin/v1/operators/demo/signature-requirements/P007")
    check("lifted again: 404", st == 404, (st, js))
    st, js = control_raw(app, "9")
    check("lifted: unsigned control of P007 is 200 again", st == 200, (st, js))
    st, js = admin.call("GET", "/admin/v1/audit/events?operator=demo&kind=registry&limit=1000")
    rows = [r for r in (js or {}).get("items", []) if r.get("target") == "signature requirement:P007"]
    check("the audit trail has the requirement's put and delete, by the admin, from where",
          [r.get("action") for r in rows] == ["put", "delete"] and all(r.get("actor") == "opa" and r.get("source")
                                                                        for r in rows)
          and "must be signed: valve" in rows[0].get("detail", ""), (st, rows or js))


try:
    pw, pw2 = srtest.init_with_admin(BIN, tr.D, demo=True, second="admin2")
    tr.start_server()
    root = srtest.admin_session(tr.PORTS["http"], "admin", pw, ADMIN_PW)
    second = srtest.admin_session(tr.PORTS["http"], "admin2", pw2, ADMIN_PW + "-2") if pw2 else None
    admin = srtest.admin_new_user(tr.PORTS["http"], root, "opa", "operator", "demo", ["operator_admin"],
                                  ADMIN_PW + "-opa", second)
    app = tr.App(*tr.APP)
    check("app login", app.login()[0] == 201)
    g2 = tr.Gateway("GW002")
    check("gateway connected", g2.connack == 0, g2.connack)
    gh = GwHttp("GW002")
    rcv = srtest.PushReceiver()
    state = {}
    for name, fn in (("algorithms", lambda: state.update(k=case_algorithms(app, g2, admin, gh))),
                     ("replaced", lambda: state.update(k=case_replaced(app, g2, admin, gh))),
                     ("certificates", lambda: case_certs(app, g2, admin, state["k"])),
                     ("push", lambda: case_push(app, g2, admin, state["k"], rcv)),
                     ("control_algorithms", lambda: case_control_algorithms(app, g2, admin)),
                     ("point_required", lambda: case_point_required(app, g2, admin))):
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
    try:
        rcv.stop()
    except Exception:
        pass
    if tr.server is not None:
        rc = tr.stop_server()
        check("SIGTERM stops the server cleanly (exit 0)", rc == 0, rc)
    srtest.finish(check, T, [])
