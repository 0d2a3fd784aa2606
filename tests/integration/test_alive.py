#!/usr/bin/python3
"""tests/integration/test_alive.py -- the alive status of gateways and apps
(R-MO-1, issue #17; api/alive.h, docs/monitoring.md "Alive status") through
the real `suiro serve`, real clients (paho-mqtt, mosquitto_pub, raw MQTT
sockets, HTTP) and the real log (`suiro replay --kind alive`).

 1. MQTT CONNECT: online (reason connect, binding mqtt, the peer's address,
    lastSeen), in GET /admin/v1/alive and as an AliveEvent.
 2. Keep-alive expiry: a raw client with keep-alive 2 s that goes silent is
    offline at 1.5 x its keep-alive: reason keepalive-expired, actor system.
 3. The will: a paho client whose will is R/status GW_DISCONNECT OFFLINE
    (the contract's) is SIGKILLed: offline, reason will, will "applied"; a
    will that is not the contract's (GW_CONNECT) is refused and named, the
    gateway offline by reason disconnect.
 4. R/status: mosquitto_pub's GW_DISCONNECT OFFLINE is acknowledged and the
    gateway is offline at once (status-offline) though its connection was
    open; GW_CONNECT ONLINE puts it back (status-online).
 5. HTTP: a gateway's login puts it online (binding http); [alive]
    http_silence_s (2 s here) without a request: offline (http-silence,
    actor system); a request: online again. An app the same way; its logout:
    offline (disconnect).
 6. The filters (kind, state), a bad filter (400 E1001 naming it), an
    operator admin of another operator refused (403 E2003). (ext) GET
    /api/v1/alive: an app sees the gateways its `alive` grant names
    (SIM000*: not SIM0010), another app without a grant none.
 7. A restart after SIGKILL: the gateway the index says online is offline,
    reason server-restart, actor system.
usage: test_alive.py SUIRO_BIN"""
import json
import os
import signal
import subprocess
import sys
import tempfile

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-alive-")
D = os.path.join(T, "data")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srtest  # noqa: E402
from srtest import (OTHER_OPERATOR_SHEET, Checks, admin_new_user, admin_session, finish, gw_envelope,  # noqa: E402
                    gwsim_sheet, http_once, import_sheet, init_with_admins, mqtt_connect, mqtt_read,
                    start_server, stop_server, wait_until)

check = Checks()
server = None
procs = []
APPS = ("\n[apps]\nid,name,secret,push_url\nAPP1,Alive app,alive-app1-secret,\nAPP2,Other app,alive-app2-secret,\n"
        "\n[storegrants]\napp,kind,target,access\nAPP1,alive,SIM000*,read\n")


def config():
    cfg = os.path.join(T, "suiro.ini")
    with open(cfg, "w") as f:
        f.write("[engine]\ndata_dir = %s\n[mqtt]\nlisten = 127.0.0.1:0\n[http]\nlisten = 127.0.0.1:0\n"
                "[alive]\nhttp_silence_s = 2\n" % D)
    return cfg


def alive(api, query="?operator=sim"):
    st, b = api.call("GET", "/admin/v1/alive" + query)
    return {(i["kind"], i["id"]): i for i in b["items"]} if st == 200 else {}


def row(api, gw, kind="gateway"):
    return alive(api).get((kind, gw), {})


def wait_state(api, gw, state, reason, kind="gateway", timeout=20):
    return wait_until(lambda: (lambda r: r if r.get("state") == state and r.get("reason") == reason else None)(
        row(api, gw, kind)), timeout=timeout, step=0.1)


def events(gw):
    out = subprocess.run([BIN, "replay", D, "--kind", "alive", "--operator", "sim"], capture_output=True,
                         text=True).stdout
    evs = [json.loads(ln) for ln in out.splitlines() if ln.strip()]
    return [e for e in evs if e["alive"].get("id") == gw]


def has_event(gw, reason, state, actor=None):
    for e in events(gw):
        a = e["alive"]
        if a.get("reason") == reason and a.get("state") == state and (actor is None or e.get("actor") == actor):
            return e
    return None


WILL_OK = gw_envelope("GW_DISCONNECT", "will-1", {"state": "OFFLINE"})
WILL_BAD = gw_envelope("GW_CONNECT", "will-2", {"state": "ONLINE"})
PAHO = r"""
import sys, time
sys.path.insert(0, %r)
import srtest
gw, port, payload = sys.argv[1], int(sys.argv[2]), sys.argv[3]
c = srtest.paho_client(gw)
c.username_pw_set("sim/" + gw, "sim-secret-" + gw)
c.will_set("wip/v1/sim/gw/%%s/status" %% gw, payload, qos=1, retain=True)
c.connect("127.0.0.1", port, keepalive=60)
c.loop_start()
print("started", flush=True)
time.sleep(600)
""" % os.path.dirname(os.path.abspath(__file__))


def paho_with_will(gw, port, payload):
    p = subprocess.Popen(["/usr/bin/python3", "-c", PAHO, gw, str(port), payload], stdout=subprocess.PIPE, text=True)
    procs.append(p)
    p.stdout.readline()
    return p


try:
    temp, temp2 = init_with_admins(BIN, D)
    import_sheet(BIN, D, os.path.join(T, "sim.csv"), gwsim_sheet(BIN, 10, 1) + APPS)
    import_sheet(BIN, D, os.path.join(T, "other.csv"), OTHER_OPERATOR_SHEET)
    server, ports = start_server(BIN, D, os.path.join(T, "server.log"), config=config())
    hp, mp = ports["http"], ports["mqtt"]
    root = admin_session(hp, "admin", temp, "platform-admin-pw-1")
    root2 = admin_session(hp, "admin2", temp2, "platform-admin-pw-2")

    # 1-2. CONNECT, then silence past 1.5 x a keep-alive of 2 s
    import socket
    s1 = socket.create_connection(("127.0.0.1", mp), timeout=20)
    s1.sendall(mqtt_connect("SIM0001", "sim/SIM0001", "sim-secret-SIM0001", keepalive=2))
    check("a raw client with keep-alive 2 s logs in", mqtt_read(s1) == (2, b"\x00\x00"))
    r = wait_state(root, "SIM0001", "online", "connect")
    check("CONNECT: online in GET /admin/v1/alive (reason connect, binding mqtt, its address, lastSeen)",
          r and r["binding"] == "mqtt" and r["remote"].startswith("127.0.0.1:") and r.get("lastSeen"), r)
    check("... and the AliveEvent is in the log, the gateway its actor",
          wait_until(lambda: has_event("SIM0001", "AR_CONNECT", "AS_ONLINE", "SIM0001")), events("SIM0001"))
    r = wait_state(root, "SIM0001", "offline", "keepalive-expired")
    check("keep-alive expiry: offline, reason keepalive-expired", r, row(root, "SIM0001"))
    check("... an event of the system in the log",
          wait_until(lambda: has_event("SIM0001", "AR_KEEPALIVE_EXPIRED", "AS_OFFLINE", "system")), events("SIM0001"))
    try:
        closed = s1.recv(10) == b""
    except OSError:
        closed = True
    check("... and the server closed the connection", closed)
    s1.close()

    # 3. the will: the contract's, and another
    p2 = paho_with_will("SIM0002", mp, WILL_OK)
    check("a paho client with a will is online", wait_state(root, "SIM0002", "online", "connect"))
    p2.kill()
    p2.wait()
    r = wait_state(root, "SIM0002", "offline", "will")
    check("its socket cut (SIGKILL): offline, reason will, the will applied", r and r.get("will") == "applied", r)
    e = wait_until(lambda: has_event("SIM0002", "AR_WILL", "AS_OFFLINE"))
    check("... and in the log with the will's handling", e and e["alive"].get("will") == "applied", e)
    p3 = paho_with_will("SIM0003", mp, WILL_BAD)
    check("a client whose will is GW_CONNECT is online", wait_state(root, "SIM0003", "online", "connect"))
    p3.kill()
    p3.wait()
    r = wait_state(root, "SIM0003", "offline", "disconnect")
    check("a will that is not R/status GW_DISCONNECT OFFLINE is refused, named; offline by disconnect",
          r and r.get("will", "").startswith("refused: header.messageType"), r)

    # 4. R/status OFFLINE from mosquitto_pub while connected, then ONLINE
    g4 = srtest.RawGw(mp, "sim", "SIM0004", "sim-secret-SIM0004")
    check("SIM0004 online", wait_state(root, "SIM0004", "online", "connect"))
    rc = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(mp), "-i", "SIM0004", "-u", "sim/SIM0004",
                         "-P", "sim-secret-SIM0004", "-q", "1", "-t", "wip/v1/sim/gw/SIM0004/status", "-m",
                         gw_envelope("GW_DISCONNECT", "st-1", {"state": "OFFLINE"})], capture_output=True, timeout=20)
    check("mosquitto_pub's R/status GW_DISCONNECT OFFLINE is acknowledged (QoS 1)", rc.returncode == 0, rc.stderr)
    r = row(root, "SIM0004")
    check("... and the gateway is offline at once (status-offline)",
          r.get("state") == "offline" and r.get("reason") == "status-offline", r)
    check("... an event in the log", has_event("SIM0004", "AR_STATUS_OFFLINE", "AS_OFFLINE", "SIM0004"))
    g4 = srtest.RawGw(mp, "sim", "SIM0004", "sim-secret-SIM0004")
    wait_state(root, "SIM0004", "online", "connect")
    check("R/status GW_CONNECT ONLINE is acknowledged",
          g4.publish_wait("status", gw_envelope("GW_CONNECT", "st-2", {"state": "ONLINE"})) == 0)
    check("... and stored: reason status-online", row(root, "SIM0004").get("reason") == "status-online",
          row(root, "SIM0004"))
    check("R/status GW_DISCONNECT OFFLINE over the open connection",
          g4.publish_wait("status", gw_envelope("GW_DISCONNECT", "st-3", {"state": "OFFLINE"})) == 0)
    r = row(root, "SIM0004")
    check("... offline at once, its connection still open",
          r.get("state") == "offline" and r.get("reason") == "status-offline", r)
    g4.close()

    # 5. HTTP: a gateway and an app
    def call(method, path, body=None, token=None):
        st, _, data, _ = http_once(hp, method, path, body, token=token)
        return st, (json.loads(data) if data else None)
    st, b = call("POST", "/gw/v1/sessions", {"operatorId": "sim", "gatewayId": "SIM0005",
                                             "secret": "sim-secret-SIM0005"})
    check("an HTTP gateway logs in", st == 201, b)
    gtok = b["token"]
    r = wait_state(root, "SIM0005", "online", "connect")
    check("... online, binding http", r and r["binding"] == "http", r)
    r = wait_state(root, "SIM0005", "offline", "http-silence")
    check("[alive] http_silence_s without a request: offline (http-silence)", r, row(root, "SIM0005"))
    check("... an event of the system", wait_until(lambda: has_event("SIM0005", "AR_HTTP_SILENCE", "AS_OFFLINE",
                                                                     "system")))
    st, b = call("POST", "/gw/v1/requests/fetch", gw_envelope("GW_FETCH_REQ", "f-1", {"maxItems": 1, "waitMs": 0}),
                 token=gtok)
    check("a request of the gateway", st == 200, (st, b))
    check("... online again", wait_state(root, "SIM0005", "online", "connect"))
    st, b = call("POST", "/api/v1/sessions", {"operatorId": "sim", "appId": "APP1", "secret": "alive-app1-secret"})
    check("an app logs in", st == 201, b)
    atok = b["token"]
    r = wait_state(root, "APP1", "online", "connect", kind="app")
    check("... the app is online", r and r["binding"] == "http", r)
    st, _ = call("DELETE", "/api/v1/sessions/current", token=atok)
    check("its logout", st == 204)
    check("... offline (disconnect)", wait_state(root, "APP1", "offline", "disconnect", kind="app"))
    g10 = srtest.RawGw(mp, "sim", "SIM0010", "sim-secret-SIM0010")
    check("SIM0010 (not granted to APP1) online", wait_state(root, "SIM0010", "online", "connect"))
    st, b = call("POST", "/api/v1/sessions", {"operatorId": "sim", "appId": "APP1", "secret": "alive-app1-secret"})
    atok = b["token"]
    st, b = call("GET", "/api/v1/alive", token=atok)
    ids = {i["id"]: i for i in b["items"]} if st == 200 else {}
    check("(ext) GET /api/v1/alive: the app sees the gateways its alive grant names (SIM000*)",
          st == 200 and {"SIM0001", "SIM0002", "SIM0004", "SIM0005"} <= set(ids) and "SIM0010" not in ids and
          ids["SIM0002"]["reason"] == "will" and "operatorId" not in ids["SIM0002"], (st, b))
    st, b = call("GET", "/api/v1/alive?state=online", token=atok)
    check("... ?state=online: only online ones", st == 200 and all(i["state"] == "online" for i in b["items"]), b)
    st, b = call("GET", "/api/v1/alive?state=up", token=atok)
    check("... a bad state: 400 E1001", st == 400 and b["result"]["code"] == "E1001", (st, b))
    st, b = call("POST", "/api/v1/sessions", {"operatorId": "sim", "appId": "APP2", "secret": "alive-app2-secret"})
    st, b = call("GET", "/api/v1/alive", token=b["token"])
    check("an app without an alive grant sees none", st == 200 and b["items"] == [], (st, b))
    g10.close()

    # 6. filters and who may read
    check("?kind=app lists only apps", set(k for k, _ in alive(root, "?operator=sim&kind=app")) == {"app"},
          alive(root, "?operator=sim&kind=app"))
    check("?state=online&kind=gateway lists no offline gateway",
          all(v["state"] == "online" for v in alive(root, "?state=online&kind=gateway").values()))
    check("the platform's view without ?operator names each row's operator",
          all(v["operatorId"] == "sim" for (k, i), v in alive(root, "").items() if i.startswith("SIM")))
    st, b = root.call("GET", "/admin/v1/alive?kind=pump")
    check("a bad kind: 400 E1001 naming it", st == 400 and b["result"]["code"] == "E1001" and
          b["result"]["detail"]["field"] == "kind", (st, b))
    oadm = admin_new_user(hp, root, "oadm", "operator", "other", ["operator_admin"], "other-admin-pw-1",
                          approver=root2)
    st, b = oadm.call("GET", "/admin/v1/alive?operator=sim")
    check("an operator admin of another operator: 403 E2003", st == 403 and b["result"]["code"] == "E2003", (st, b))
    st, b = oadm.call("GET", "/admin/v1/alive")
    check("... its own operator's by default (none of sim's)",
          st == 200 and all(i["operatorId"] == "other" for i in b["items"]), (st, b))

    # 7. online when the server is killed: server-restart at the next start
    g6 = srtest.RawGw(mp, "sim", "SIM0006", "sim-secret-SIM0006")
    check("SIM0006 online", wait_state(root, "SIM0006", "online", "connect"))
    check("... durable", wait_until(lambda: has_event("SIM0006", "AR_CONNECT", "AS_ONLINE")))
    server.send_signal(signal.SIGKILL)
    server.wait()
    g6.s.close()
    server, ports = start_server(BIN, D, os.path.join(T, "server.log"), config=config())
    hp = ports["http"]
    root = admin_session(hp, "admin", "platform-admin-pw-1")
    r = wait_state(root, "SIM0006", "offline", "server-restart")
    check("after a restart the gateway is offline, reason server-restart", r and "lastSeen" not in r, r)
    check("... an event of the system in the log",
          wait_until(lambda: has_event("SIM0006", "AR_SERVER_RESTART", "AS_OFFLINE", "system")))
    check("a gateway offline before the restart gets no second event",
          not has_event("SIM0004", "AR_SERVER_RESTART", "AS_OFFLINE"))
    check("clean stop", stop_server(server) == 0)
    server = None
except Exception as e:  # noqa: BLE001
    check.failed(e)
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    sys.exit(finish(check, T, [server]))
