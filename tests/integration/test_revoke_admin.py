#!/usr/bin/python3
"""tests/integration/test_revoke_admin.py -- revocation at once (issue #14, R-ID-4;
docs/admin.md "Revocation") through the real binary: an operator admin
changes the registry of the RUNNING server through the Admin API while an
app and two gateways have live sessions, and the very next request of each
session sees the change:
  - APP001's grants narrowed: its session goes on, the data point no longer
    granted is 403 E2003 at once, the one still granted 200, and the push
    of its monitor started before (on both points) carries the granted
    point only (withheldValues 1; api/broker.c invariant 6);
  - APP001's secret rotated: its token is 401, the old secret logs in no
    more, the new one does;
  - APP001 disabled: its new session is 401, and it cannot log in;
  - GW001 disabled: its MQTT 5.0 connection (paho) is closed by the server
    with DISCONNECT 0x87 Not authorized, its GW-IF HTTP token is 401, and
    it cannot log in again (mosquitto_pub, the HTTP session);
  - GW002's secret rotated: its MQTT 3.1.1 connection is closed, the new
    secret connects;
  - each session's end is a session event with its reason (suiro replay).
(No change here is a privilege change -- no widening, no enabling -- so no
second admin's approval is involved.) tests/api/test_revoke_live.c runs the
same on an in-process server without the Admin API (a deleted app, MQTT by
hand, a disable ending a session with no request).
usage: test_revoke_admin.py SUIRO_BIN"""
import json
import os
import subprocess
import sys
import tempfile
import threading

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-revoke-live-")
D = os.path.join(T, "data")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srtest import (Api, Checks, PushReceiver, RawGw, admin_new_user, admin_session, code, finish,  # noqa: E402
                    gw_envelope, init_with_admin, paho_client, start_server, wait_until)

check = Checks()
server = None
OPS = "/admin/v1/operators/demo"


def latest(api, point):
    st, b = api.call("GET", "/api/v1/stored-values/latest?dataId=" + point)
    return st, code(b)


def app_login(hp, secret):
    a = Api(hp)
    return a.login("APP001", "demo", secret), a


def gw_http_login(hp, gw, secret):
    a = Api(hp)
    st, b = a.call("POST", "/gw/v1/sessions", {"operatorId": "demo", "gatewayId": gw, "secret": secret})
    if st == 201:
        a.token = b["token"]
    return st, a


class Gw:
    """a paho client of gw that records its connection's end"""

    def __init__(self, port, gw, secret, v5):
        import paho.mqtt.client as mqtt
        self.connected = threading.Event()
        self.gone = threading.Event()
        self.rc = None
        self.c = paho_client(gw, protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
        self.c.username_pw_set("demo/" + gw, secret)
        self.c.on_connect = lambda c, u, f, rc, p=None: self.connected.set() if int(getattr(rc, "value", rc)) == 0 \
            else None
        self.c.on_disconnect = self._disc
        self.c.reconnect_delay_set(60, 60)  # no reconnect while the test looks
        self.c.connect("127.0.0.1", port, 60)
        self.c.loop_start()

    def _disc(self, c, u, rc, props=None):
        self.rc = int(getattr(rc, "value", rc))
        self.gone.set()

    def stop(self):
        self.c.loop_stop()
        try:
            self.c.disconnect()
        except Exception:
            pass


def session_reasons():
    out = subprocess.run([BIN, "replay", D, "--kind", "session"], capture_output=True, text=True).stdout
    return out


try:
    temp = init_with_admin(BIN, D, demo=True)
    server, ports = start_server(BIN, D, os.path.join(T, "server.log"))
    hp, mp = ports["http"], ports["mqtt"]
    root = admin_session(hp, "admin", temp, "platform-admin-pw-1")
    opa = admin_new_user(hp, root, "opa", "operator", "demo", ["operator_admin"], "operator-admin-pw-1")

    # ---- an app's session across a grant narrowed, a secret rotated, a disable
    st, app = app_login(hp, "demo-app001-secret")
    check("APP001 logs in", st == 201, st)
    check("APP001 reads P002 (granted *)", latest(app, "P002")[0] == 200, latest(app, "P002"))
    # a monitor of APP001 on P001 and P002 (GW001), its values pushed to rcv
    rcv = PushReceiver()
    st, b = opa.call("PUT", OPS + "/apps/APP001/push-url", {"pushUrl": "http://127.0.0.1:%d/push" % rcv.port})
    check("the admin points APP001's pushes at the receiver", st == 200, (st, b))
    st, b = app.call("POST", "/api/v1/monitors", {"dataIds": ["P001", "P002"], "intervalMs": 1000})
    mon = (b or {}).get("monitorId")
    check("APP001 starts a monitor on P001 and P002", st == 201 and mon, (st, b))
    gw = RawGw(mp, "demo", "GW001", "demo-gw001-secret")
    ack = gw.publish_wait("ack/monitor", gw_envelope("GW_MONITOR_ACK", "ma1",
                                                     {"monitorId": mon, "action": "START", "result": "0"}))
    check("GW001 acknowledges the start", ack == 0, ack)

    def periodic(mid, ts):
        return gw.publish_wait("data/periodic", gw_envelope("GW_PERIODIC_DATA", mid, {"monitorId": mon, "values": [
            {"dataId": "P001", "timestamp": ts, "value": 1.5, "quality": "GOOD"},
            {"dataId": "P002", "timestamp": ts, "value": 0.5, "quality": "GOOD"}]}))

    def pushed(ts):
        """the monitor's push that carries the values of time ts"""
        p = rcv.wait(lambda g: g[0] == "/push/monitors/" + mon and ts in json.dumps(g[1]), 20)
        return p[1] if p and isinstance(p[1], dict) else None

    check("GW001's periodic values are stored", periodic("pd1", "2026-11-22T01:00:00.000Z") == 0)
    p = pushed("2026-11-22T01:00:00")
    check("before: the push carries P001 and P002",
          p and sorted(v["dataId"] for v in p.get("values", [])) == ["P001", "P002"], p)
    st, b = opa.call("PUT", OPS + "/apps/APP001/grants", {"grants": [{"dataId": "P001", "access": "read"}]})
    check("the admin narrows APP001's grants to P001 (answered once durable)", st == 200, (st, b))
    check("GW001's next periodic values are stored", periodic("pd2", "2026-11-22T01:00:01.000Z") == 0)
    p = pushed("2026-11-22T01:00:01")
    check("after: the monitor's push carries P001 only, withheldValues 1",
          p and [v["dataId"] for v in p.get("values", [])] == ["P001"] and p.get("withheldValues") == 1, p)
    gw.close()
    rcv.stop()
    check("the same session's very next request for P002: 403 E2003", latest(app, "P002") == (403, "E2003"),
          latest(app, "P002"))
    check("... and P001 is still read: the session goes on", latest(app, "P001")[0] == 200, latest(app, "P001"))
    st, b = opa.call("POST", OPS + "/apps/APP001/secret")
    new = (b or {}).get("secret", "")
    check("the admin rotates APP001's secret", st == 200 and new, (st, b))
    check("the session's next request: 401 E2001", latest(app, "P001") == (401, "E2001"), latest(app, "P001"))
    check("the old secret logs in no more", app_login(hp, "demo-app001-secret")[0] == 401)
    st, app = app_login(hp, new)
    check("the new secret logs in", st == 201, st)
    check("... and reads P001", latest(app, "P001")[0] == 200)
    st, b = opa.call("POST", OPS + "/apps/APP001/disable")
    check("the admin disables APP001", st in (200, 204), (st, b))
    check("the session ended without a request (the event is in the log)",
          wait_until(lambda: "app disabled" in session_reasons(), 20, 0.2), session_reasons()[-600:])
    check("its next request: 401", latest(app, "P001")[0] == 401, latest(app, "P001"))
    check("a disabled app cannot log in", app_login(hp, new)[0] == 401)

    # ---- a gateway's MQTT connection and HTTP token when it is disabled
    g1 = Gw(mp, "GW001", "demo-gw001-secret", v5=True)
    check("GW001 connects over MQTT 5.0", g1.connected.wait(10))
    st, gh = gw_http_login(hp, "GW001", "demo-gw001-secret")
    check("GW001 has a GW-IF HTTP session", st == 201, st)
    cert = "/gw/v1/certificates/platform/platform"
    check("its token works", gh.call("GET", cert)[0] == 200)
    st, b = opa.call("POST", OPS + "/gateways/GW001/disable")
    check("the admin disables GW001", st in (200, 204), (st, b))
    check("paho sees the server close GW001's connection", g1.gone.wait(20))
    check("with DISCONNECT 0x87 Not authorized", g1.rc == 0x87, g1.rc)
    g1.stop()
    st, b = gh.call("GET", cert)
    check("GW001's HTTP token: 401 E2001", st == 401 and code(b) == "E2001", (st, b))
    r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(mp), "-i", "GW001", "-u", "demo/GW001",
                        "-P", "demo-gw001-secret", "-q", "1", "-t", "wip/v1/demo/gw/GW001/data/measurements",
                        "-m", "{}"], capture_output=True, text=True, timeout=30)
    check("a disabled gateway cannot connect (mosquitto_pub refused)", r.returncode != 0, (r.returncode, r.stderr))
    check("nor open an HTTP session", gw_http_login(hp, "GW001", "demo-gw001-secret")[0] == 401)

    # ---- a rotated gateway secret (MQTT 3.1.1)
    g2 = Gw(mp, "GW002", "demo-gw002-secret", v5=False)
    check("GW002 connects over MQTT 3.1.1", g2.connected.wait(10))
    st, b = opa.call("POST", OPS + "/gateways/GW002/secret")
    new2 = (b or {}).get("secret", "")
    check("the admin rotates GW002's secret", st == 200 and new2, (st, b))
    check("paho sees the server close GW002's connection", g2.gone.wait(20))
    g2.stop()
    g3 = Gw(mp, "GW002", new2, v5=False)
    check("the new secret connects", g3.connected.wait(10))
    g3.stop()

    # ---- the events
    out = session_reasons()
    for reason in ("app secret rotated", "app disabled", "gateway disabled", "gateway secret rotated"):
        check("a session event with the reason '%s'" % reason, reason in out, out[-800:])
    ends = [json.loads(ln) for ln in out.splitlines() if ln.strip() and "gateway disabled" in ln]
    check("the gateway's end names the gateway as the actor", ends and ends[0].get("actor") == "GW001", ends[:1])
finally:
    finish(check, T, [server])
