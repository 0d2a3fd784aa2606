#!/usr/bin/python3
"""tests/integration/test_signatures_values_required.py -- signed VALUES
required per data point (issue #18, R-SE-3; docs/signatures.md "Requiring
signatures"), through the real `suiro serve` with a gateway key made by
`openssl` (srtest.OpensslSigner, ES256):
  - PUT .../signature-requirements/PX1 {"reason","scope":"values"} -> 200
    with its scope, listed with it; a bad scope is 400 E1001;
  - an unsigned GW_MEASUREMENTS of PX1 is refused E5001 over MQTT (PUBACK
    0x83, the reason of a refused values message) and GW-IF HTTP (422 E5001), nothing stored; a
    message naming PX1 and PX2 unsigned is refused as a whole (PX2 not
    stored either: a bad signature's batch semantics); PX2 alone unsigned is
    stored (the requirement is per point);
  - the same values signed (openssl) are stored over MQTT and HTTP;
  - the refusal is audited (kind refused, outcome E5001, actor GWX, PX1);
  - scope "values" does not require signed control (an unsigned control of
    PX1 is not E5001); scope "control+values" requires both; no scope (as
    before) means control only: unsigned values stored again;
  - the requirement survives a restart (read at start): unsigned refused;
  - lifted (DELETE): unsigned values stored again.
usage: test_signatures_values_required.py SUIRO_BIN"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-sigvalreq-")
D = os.path.join(T, "data")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srtest  # noqa: E402
from srtest import (OTHER_OPERATOR_SHEET, Api, Checks, RawGw, admin_new_user, admin_session, code, finish,  # noqa: E402
                    import_sheet, init_with_admins, start_server, stop_server, wait_until)

check = Checks()
server = None
REQ = "/admin/v1/operators/other/signature-requirements"
N = [0]


def env(body_text, prot=None):
    N[0] += 1
    e = '{"header":{"messageType":"GW_MEASUREMENTS","messageId":"m%d","timestamp":"2026-11-22T00:00:00.000Z"},' \
        '"body":%s' % (N[0], body_text)
    return e + (',"protection":%s}' % json.dumps(prot) if prot else "}")


def vals(*pv):
    N[0] += 1
    return '{"values":[%s]}' % ",".join('{"dataId":"%s","timestamp":"2026-11-22T00:%02d:%02d.000Z","value":%s}' % (
        p, N[0] // 60 % 60, N[0] % 60, v) for p, v in pv)


def latest(app, p):
    st, b = app.call("GET", "/api/v1/stored-values/latest?dataId=" + p)
    vs = b.get("values", []) if isinstance(b, dict) else []
    return vs[0].get("value") if vs else None


class Gw:
    def __init__(self, mp, hp):
        self.m = RawGw(mp, "other", "GWX", "other-gw-secret", v5=True)
        self.h = Api(hp)
        st, b = self.h.call("POST", "/gw/v1/sessions", {"operatorId": "other", "gatewayId": "GWX",
                                                         "secret": "other-gw-secret"})
        self.h.token = b.get("token") if isinstance(b, dict) else None
        check("GWX connected over MQTT 5 and HTTP", self.m.connack == 0 and self.h.token, (self.m.connack, b))

    def mqtt(self, body, prot=None):
        return self.m.publish_wait("data/measurements", env(body, prot))

    def http(self, body, prot=None):
        st, b = self.h.call("POST", "/gw/v1/measurements", env(body, prot))
        return st, code(b)


def start():
    global server
    cfg = os.path.join(T, "suiro.ini")
    open(cfg, "w").write("[engine]\ndata_dir = %s\n[mqtt]\nlisten = 127.0.0.1:0\n[http]\nlisten = 127.0.0.1:0\n"
                         "[audit]\nflush_ms = 200\n" % D)
    server, ports = start_server(BIN, D, os.path.join(T, "server.log"), config=cfg, until="mqtt")
    if "http" not in ports:
        wait_until(lambda: "http" in ports, timeout=10)
    return ports["http"], ports["mqtt"]


try:
    temp, temp2 = init_with_admins(BIN, D)
    import_sheet(BIN, D, os.path.join(T, "other.csv"), OTHER_OPERATOR_SHEET +
                 "\n[datapoints]\nid,device,name,type,unit,min,max,kind\nPX2,DX,Other level,number,m,0,100,both\n"
                 "\n[grants]\napp,datapoint,access\nAPPX,PX2,both\n")
    key = srtest.OpensslSigner("GWX", 0x31, T, alg="ES256")
    pem = os.path.join(T, "gwx.pem")
    open(pem, "w").write(key.pem)
    r = subprocess.run([BIN, "cert", "import", D, "--operator", "other", "--gateway", "GWX", "--pem", pem],
                       capture_output=True, text=True)
    check("GWX's certificate (openssl ES256) registered", r.returncode == 0, r.stderr)
    hp, mp = start()
    root = admin_session(hp, "admin", temp, "platform-admin-pw-1")
    root2 = admin_session(hp, "admin2", temp2, "platform-admin-pw-2")
    opa = admin_new_user(hp, root, "opx", "operator", "other", ["operator_admin"], "operator-password-1",
                         approver=root2)
    aud = admin_new_user(hp, root, "aud", "platform", None, ["auditor"], "auditor-password-1", approver=root2)
    app = Api(hp)
    check("APPX logs in", app.login("APPX", "other", "other-app-secret") == 201)
    g = Gw(mp, hp)
    t0 = int(time.time() * 1000)

    st, b = opa.call("PUT", REQ + "/PX1", {"reason": "billing meter", "scope": "sometimes"})
    check("a bad scope: 400 E1001", st == 400 and code(b) == "E1001", (st, b))
    st, b = opa.call("PUT", REQ + "/PX1", {"reason": "billing meter", "scope": "values"})
    check("require signed values of PX1: 200 with scope values",
          st == 200 and b.get("dataId") == "PX1" and b.get("scope") == "values", (st, b))
    st, b = opa.call("GET", REQ)
    check("listed with its scope", st == 200 and [(i["dataId"], i["scope"]) for i in b["items"]] == [("PX1", "values")],
          (st, b))

    check("PX2 alone, unsigned (MQTT): stored (PUBACK 0)", g.mqtt(vals(("PX2", 5))) == 0)
    check("... PX2 is 5", wait_until(lambda: latest(app, "PX2") == 5, 5), latest(app, "PX2"))
    rc = g.mqtt(vals(("PX1", 11)))
    check("PX1 unsigned over MQTT: refused (PUBACK 0x83, a refused values message)", rc == 0x83, rc)
    check("PX1 unsigned over HTTP: 422 E5001", g.http(vals(("PX1", 12))) == (422, "E5001"))
    rc = g.mqtt(vals(("PX2", 6), ("PX1", 13)))
    check("PX2 and PX1 unsigned in one message (MQTT): refused as a whole (0x83)", rc == 0x83, rc)
    check("... over HTTP too: 422 E5001", g.http(vals(("PX2", 7), ("PX1", 14))) == (422, "E5001"))
    check("nothing of them stored: PX1 none, PX2 still 5", latest(app, "PX1") is None and latest(app, "PX2") == 5,
          (latest(app, "PX1"), latest(app, "PX2")))
    b1 = vals(("PX1", 21))
    check("PX1 signed (openssl ES256) over MQTT: stored (PUBACK 0)", g.mqtt(b1, key.protection(b1.encode())) == 0)
    check("... PX1 is 21", wait_until(lambda: latest(app, "PX1") == 21, 5), latest(app, "PX1"))
    b2 = vals(("PX1", 22), ("PX2", 8))
    check("PX1 and PX2 signed over HTTP: 200 code 0", g.http(b2, key.protection(b2.encode())) == (200, "0"))
    check("... stored", wait_until(lambda: latest(app, "PX1") == 22 and latest(app, "PX2") == 8, 5))
    log = open(os.path.join(T, "server.log")).read()
    check("the refusals are logged (gateway message refused: protection, signature required)",
          "signature required: values of data point PX1" in log)

    def e5001(x):
        return [r for r in x if r["outcome"] == "E5001"]
    its = []

    def probe():
        its[:] = e5001(aud.call("GET", "/admin/v1/audit/events?" + urllib.parse.urlencode(
            {"kind": "refused", "actor": "GWX", "from": t0}))[1].get("items", []))
        return sum(int(re.match(r"(\d+)", r["detail"]).group(1)) for r in its) >= 4
    wait_until(probe, timeout=10)
    check("the 4 refusals are audited: kind refused, outcome E5001, actor GWX, naming PX1",
          its and all(r["target"] == "gateway:GWX" and "PX1" in r["detail"] for r in its)
          and sum(int(re.match(r"(\d+)", r["detail"]).group(1)) for r in its) == 4, its)

    # scopes: values only does not require signed control; control+values does
    st, b = app.call("POST", "/api/v1/control-values", {"dataId": "PX1", "value": 1, "timeoutMs": 500})
    check("scope values: an unsigned control of PX1 is not refused E5001", code(b) != "E5001", (st, b))
    st, b = opa.call("PUT", REQ + "/PX1", {"reason": "billing meter", "scope": "control+values"})
    check("scope control+values: 200", st == 200 and b.get("scope") == "control+values", (st, b))
    st, b = app.call("POST", "/api/v1/control-values", {"dataId": "PX1", "value": 1, "timeoutMs": 500})
    check("... an unsigned control of PX1: 422 E5001", st == 422 and code(b) == "E5001", (st, b))
    check("... an unsigned value of PX1 (HTTP): 422 E5001", g.http(vals(("PX1", 31))) == (422, "E5001"))
    st, b = opa.call("PUT", REQ + "/PX1", {"reason": "billing meter"})
    check("no scope (as before): control only (200, scope control)", st == 200 and b.get("scope") == "control", (st, b))
    check("... unsigned values of PX1 are stored again (MQTT)", g.mqtt(vals(("PX1", 32))) == 0)

    # a restart: the requirement is read at start
    st, b = opa.call("PUT", REQ + "/PX1", {"reason": "billing meter", "scope": "values"})
    check("scope values again: 200", st == 200, (st, b))
    g.m.close()
    rc = stop_server(server)
    server = None
    check("stopped cleanly", rc == 0, rc)
    hp, mp = start()
    g = Gw(mp, hp)
    rc = g.mqtt(vals(("PX1", 41)))
    check("after a restart: PX1 unsigned over MQTT still refused (0x83)", rc == 0x83, rc)
    check("... PX2 unsigned stored (0)", g.mqtt(vals(("PX2", 42))) == 0)
    opa = admin_session(hp, "opx", "operator-password-1")
    st, b = opa.call("DELETE", REQ + "/PX1")
    check("lifted: 204", st == 204, (st, b))
    check("lifted: PX1 unsigned over MQTT stored (0)", g.mqtt(vals(("PX1", 43))) == 0)
    check("lifted: PX1 unsigned over HTTP stored (200)", g.http(vals(("PX1", 44))) == (200, "0"))
    g.m.close()
finally:
    if server is not None:
        rc = stop_server(server)
        check("SIGTERM stops the server cleanly (exit 0)", rc == 0, rc)
    finish(check, T, [server])
