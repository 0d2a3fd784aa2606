#!/usr/bin/python3
"""tests/integration/test_cluster_flows.py -- request flows across cluster
nodes (issue #19 phase 2b, docs/cluster.md "Request flows across nodes",
docs/requests.md "Across cluster nodes"): 3 nats-server JetStream nodes and
suiro nodes s1, s2, s3 (`owned = all`). The app is on s1; its gateways are
on s2: GWA over MQTT (paho), GWH over the GW-IF HTTP binding (long polls).

 A. an immediate request on s1 is answered with GWA's values (sync) and
    with GWH's (an HTTP-fetching gateway), and one over both gateways;
 B. an async one: 202, then GET /api/v1/requests/{id} on s1 SUCCEEDED with
    the values, and its outcome pushed to the app's push URL;
 C. a control request succeeded (appliedValue) and one failed by the
    gateway (502 E4003, its message);
 D. GWA moves from s2 to s3 with a request open (it did not answer on s2):
    the request is handed to it again on s3, and its answer there settles it;
 E. a gateway on no node: the part fails at once as on one node (503 E4001);
 F. tenant isolation: an app of operator wy asking on s1 for a point of
    operator wx (whose gateway is on s2) gets the same refusal as on s2,
    where that gateway is connected, and no gateway got a request of it;
 G. the relay's metrics and events: s1 counted the requests it relayed and
    the results it used, s2 those it took; s2's log holds GWA's answer (actor
    the gateway), s1's the settlement with the relaying node as its source.
 H. monitors across nodes (docs/cluster.md "Monitors across nodes"): the
    app on s1 starts a monitor of PA1 (GWA, MQTT on s2) and PH1 (GWH, HTTP
    on s2): both gateways get PERIODIC_START through s2 and acknowledge it
    there, the monitor is RUNNING on s1; GWA's GW_PERIODIC_DATA on s2 is
    acknowledged there and pushed by s1 with the content s2 pushes for the
    same values of a monitor of its own (the single-node path), GWH's too;
    GWA moves to s3 and gets the running monitor's START again there, its
    data from s3 is pushed; wy's app is refused on s1 as on s3; stopping
    on s1 sends PERIODIC_STOP to both gateways and the monitor ends
    STOPPED; the events on both nodes (s2's own log holds the values and
    the acknowledgements, s1's the monitor's moves with the relaying node
    as source and the values as a replicated event) and the counters.
 I. the monitor's node dies (kill -9 of s1) with a monitor running: GWA's
    values on s3 are still acknowledged (durable on s3), the DATA s1 does
    not hear is counted "unheard", and after 20 s of it s3 ends the relay
    (GWA's values of that monitor refused E3001 as for an unknown monitor,
    not relayed for ever); s1 restarted holds the monitor RUNNING
    (as one node after a restart), sends its START again to GWA on s3, and
    GWA's next values are pushed.
 J. the app's monitors from any node (docs/cluster.md "Monitors across
    nodes", "From any node"): while s1 is dead (in I) the app's DELETE on s2
    of s1's monitor is answered 503 E9002 with Retry-After naming s1, and
    s2's list shows the monitor as last recorded; after s1's restart the app
    on s2 lists it as s1 does, reads its values as on s1, and stops it (s1's
    202 STOPPING; GWA on s3 handed PERIODIC_STOP; STOPPED on s1 and in s2's
    list); wy's app is refused on s2 as on s1 (404 E3001) and does not see
    it; the relay's ask/answer counters; s1's own log holds the stop (actor
    the app); GET /requests/{id} on s2 of s1's request answers as on s1.
Loopback only, bounded waits, every process stopped by its PID. Exit 77
(skipped) only when nats-server is not installed.
usage: test_cluster_flows.py SUIRO_BIN"""
import datetime
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srtest  # noqa: E402

BIN = sys.argv[1]
if not srtest.nats_server_path():
    print("SKIP: nats-server is not installed (scripts/deps.sh installs it)")
    sys.exit(77)
T = tempfile.mkdtemp(prefix="suiro-cflows-")
check = srtest.Checks()
PARTS = 4
WAIT = 15.0

SHEET = """#suiro-setup-sheet v1
[operator]
id,name
wx,Water X

[gateways]
id,name,secret
GWA,Gateway A,wx-gwa-secret-0001
GWH,Gateway H,wx-gwh-secret-0001
GWZ,Gateway Z,wx-gwz-secret-0001

[apps]
id,name,secret,push_url
APW,App W,wx-apw-secret-0001,{push}

[facilities]
id,name
F1,Plant

[equipment]
id,facility,name
E1,F1,Station

[devices]
id,equipment,gateway,name
DA,E1,GWA,Controller A
DH,E1,GWH,Controller H
DZ,E1,GWZ,Controller Z

[datapoints]
id,device,name,type,unit,min,max,kind
PA1,DA,Level A,number,m,0,100,measure
PA2,DA,Valve A,number,%,0,100,control
PH1,DH,Level H,number,m,0,100,measure
PZ1,DZ,Level Z,number,m,0,100,measure

[grants]
app,datapoint,access
APW,*,both
"""

SHEET_Y = """#suiro-setup-sheet v1
[operator]
id,name
wy,Water Y

[gateways]
id,name,secret
GWY,Gateway Y,wy-gwy-secret-0001

[apps]
id,name,secret,push_url
APY,App Y,wy-apy-secret-0001,

[facilities]
id,name
FY,Plant Y

[equipment]
id,facility,name
EY,FY,Station Y

[devices]
id,equipment,gateway,name
DY,EY,GWY,Controller Y

[datapoints]
id,device,name,type,unit,min,max,kind
PY1,DY,Level Y,number,m,0,100,measure

[grants]
app,datapoint,access
APY,*,both
"""

_mid = itertools.count(1)


def ts():
    t = datetime.datetime.now(datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def envelope(mtype, body, mid=None):
    return {"header": {"messageType": mtype, "messageId": mid or "m-%d" % next(_mid), "timestamp": ts()},
            "body": body}


def data(n):
    return os.path.join(T, "data-" + n)


def write_config(name, nats):
    path = os.path.join(T, name + ".ini")
    with open(path, "w") as f:
        f.write("[cluster]\nnats = %s\nnode = %s\npartitions = %d\nreplicas = 3\nack_timeout_ms = 2000\n"
                "dedup_window_s = 600\nowned = all\n" % (nats, name, PARTS))
    return path


def start(name, cfg):
    p, ports = srtest.start_server(BIN, data(name), os.path.join(T, name + ".log"), config=cfg, timeout=60,
                                   extra=["--data", data(name), "--mqtt", "127.0.0.1:0", "--http", "127.0.0.1:0"])
    return p, ports


class MqttGw:
    """Gateway GWA over MQTT on one node: answers IMMEDIATE with self.values
    and CONTROL with the value asked for (mode "ok"), a failure ("fail"), or
    nothing ("silent"); records every request it was handed."""

    def __init__(self, port, gw="GWA", secret="wx-gwa-secret-0001", mode="ok", values=None):
        self.gw, self.root = gw, "wip/v1/wx/gw/" + gw
        self.cv = threading.Condition()
        self.reqs, self.acks, self.mode = [], [], mode
        self.values = values or {"PA1": 42.5}  # before connecting: a request may be handed at once
        self.connack = self.suback = None
        self.c = srtest.paho_client(gw, mqtt.MQTTv311)  # the client id is the gateway id
        self.c.username_pw_set("wx/" + gw, secret)
        self.c.on_connect = lambda c, u, f, rc, p=None: self._set("connack", rc if isinstance(rc, int) else rc.value)
        self.c.on_subscribe = lambda c, u, mid, g, p=None: self._set("suback", list(g))
        self.c.on_message = self._msg
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()
        with self.cv:
            self.cv.wait_for(lambda: self.connack is not None, 10)
        if self.connack == 0:
            self.c.subscribe([(self.root + "/requests", 1), (self.root + "/res/#", 1)])
            with self.cv:
                self.cv.wait_for(lambda: self.suback is not None, 10)

    def _set(self, k, v):
        with self.cv:
            setattr(self, k, v)
            self.cv.notify_all()

    def _msg(self, c, u, msg):
        try:
            m = json.loads(msg.payload)
        except ValueError:
            return
        if msg.topic.endswith("/requests"):
            for r in (m.get("body") or {}).get("requests") or []:
                with self.cv:
                    self.reqs.append(r)
                    self.cv.notify_all()
                if r.get("type") in ("PERIODIC_START", "PERIODIC_STOP"):
                    self.c.publish(self.root + "/ack/monitor", json.dumps(envelope(
                        "GW_MONITOR_ACK", {"monitorId": r["monitorId"], "action": r["type"][9:], "result": "0"})),
                        qos=1)
                elif self.mode != "silent":
                    self.answer(r)
        elif msg.topic.endswith("/res/ack"):
            with self.cv:
                self.acks.append(m)
                self.cv.notify_all()

    def answer(self, r):
        if r.get("type") == "CONTROL":
            body = {"requestId": r["requestId"], "dataId": r["dataId"]}
            if self.mode == "fail":
                body["result"] = {"code": "E4003", "message": "valve stuck"}
            else:
                body["appliedValue"], body["result"] = r.get("value"), "0"
            self.c.publish(self.root + "/ack/control", json.dumps(envelope("GW_CONTROL_RESULT", body)), qos=1)
        elif r.get("type") == "IMMEDIATE":
            vals = [{"dataId": d, "timestamp": ts(), "value": self.values.get(d, 0)} for d in r.get("dataIds") or []]
            body = {"requestId": r["requestId"], "values": vals, "result": "0"}
            self.c.publish(self.root + "/data/immediate", json.dumps(envelope("GW_IMMEDIATE_RESULT", body)), qos=1)

    def monitor_got(self, mon, kind, n=1, timeout=WAIT):
        """True once this gateway was handed kind (PERIODIC_START/STOP) of mon n times."""
        with self.cv:
            return self.cv.wait_for(lambda: sum(1 for r in self.reqs if r.get("monitorId") == mon and
                                                r.get("type") == kind) >= n, timeout)

    def periodic(self, mon, vals, timeout=WAIT):
        """GW_PERIODIC_DATA of mon: the GW_ACK's result code (None: none came)."""
        env = envelope("GW_PERIODIC_DATA", {"monitorId": mon, "values": vals})
        mid = env["header"]["messageId"]
        self.c.publish(self.root + "/data/periodic", json.dumps(env), qos=1)

        def code():
            for a in self.acks:
                if (a.get("header") or {}).get("correlationId") == mid:
                    r = (a.get("body") or {}).get("result")
                    return str(r.get("code") if isinstance(r, dict) else r)
            return None
        with self.cv:
            self.cv.wait_for(lambda: code() is not None, timeout)
            return code()

    def handed(self, rid, timeout=WAIT):
        with self.cv:
            return self.cv.wait_for(lambda: any(r.get("requestId") == rid for r in self.reqs), timeout)

    def close(self):
        try:
            self.c.disconnect()
        finally:
            self.c.loop_stop()


class HttpGw:
    """Gateway GWH over GW-IF HTTP on one node: long polls (waitMs 2000) in a
    thread and answers each IMMEDIATE with value 7.25."""

    def __init__(self, port):
        self.port, self.stop, self.handed, self.mons, self.outq = port, threading.Event(), [], [], []
        self.api = None
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def login(self):
        api = srtest.Api(self.port)
        st, b = api.call("POST", "/gw/v1/sessions", {"operatorId": "wx", "gatewayId": "GWH",
                                                     "secret": "wx-gwh-secret-0001"})
        if st != 201:
            return None
        api.token = b["token"]
        return api

    def periodic(self, mon, vals, timeout=WAIT):
        """GW_PERIODIC_DATA of mon over HTTP (sent by the polling thread): (status, body)."""
        item = {"mon": mon, "vals": vals, "done": threading.Event(), "res": None}
        self.outq.append(item)
        item["done"].wait(timeout)
        return item["res"]

    def run(self):
        while not self.stop.is_set():
            try:
                if self.api is None:
                    self.api = self.login()
                    if self.api is None:
                        time.sleep(0.2)
                        continue
                while self.outq:
                    it = self.outq.pop(0)
                    it["res"] = self.api.call("POST", "/gw/v1/periodic-values", envelope(
                        "GW_PERIODIC_DATA", {"monitorId": it["mon"], "values": it["vals"]}))
                    it["done"].set()
                st, b = self.api.call("POST", "/gw/v1/requests/fetch",
                                      envelope("GW_FETCH_REQ", {"maxItems": 10, "waitMs": 2000}))
                if st != 200:
                    self.api = None
                    time.sleep(0.2)
                    continue
                for r in (b.get("body") or {}).get("requests") or []:
                    self.handed.append(r.get("requestId"))
                    if r.get("type") in ("PERIODIC_START", "PERIODIC_STOP"):
                        self.mons.append((r.get("type"), r.get("monitorId")))
                        self.api.call("POST", "/gw/v1/monitor-acks", envelope(
                            "GW_MONITOR_ACK", {"monitorId": r["monitorId"], "action": r["type"][9:], "result": "0"}))
                        continue
                    vals = [{"dataId": d, "timestamp": ts(), "value": 7.25} for d in r.get("dataIds") or []]
                    self.api.call("POST", "/gw/v1/immediate-results",
                                  envelope("GW_IMMEDIATE_RESULT", {"requestId": r["requestId"], "values": vals,
                                                                   "result": "0"}))
            except OSError:
                self.api = None
                time.sleep(0.2)


def app_on(port, app, op, secret, timeout=60):
    api = srtest.Api(port)
    ok = srtest.wait_until(lambda: api.login(app, op, secret) == 201, timeout=timeout, step=0.3)
    return api if ok else None


def values_of(body):
    return {v.get("dataId"): v.get("value") for v in (body or {}).get("values") or []} if isinstance(body, dict) \
        else {}


def code_of(body):
    return srtest.code(body)


def metrics(port):
    st, _, body, _ = srtest.http_once(port, "GET", "/metrics")
    out = {}
    for ln in (body.decode() if isinstance(body, bytes) else str(body)).splitlines():
        if ln.startswith("suiro_cluster_relayed_total") and " " in ln:
            k, v = ln.rsplit(" ", 1)
            out[k] = float(v)
    return out


def replay(name):
    r = subprocess.run([BIN, "replay", data(name)], capture_output=True, text=True, timeout=120)
    return [json.loads(ln) for ln in r.stdout.splitlines() if ln.strip()]


procs, gws = [], []
nc = None
push = srtest.PushReceiver()
try:
    subprocess.run([BIN, "init", data("s1")], check=True, capture_output=True)
    srtest.import_sheet(BIN, data("s1"), os.path.join(T, "wx.csv"),
                        SHEET.replace("{push}", "http://127.0.0.1:%d/hook" % push.port))
    srtest.import_sheet(BIN, data("s1"), os.path.join(T, "wy.csv"), SHEET_Y)
    for n in ("s2", "s3"):
        subprocess.run([BIN, "init", data(n)], check=True, capture_output=True)
    nc = srtest.start_nats_cluster(T, 3)
    ports = {}
    for n in ("s1", "s2", "s3"):
        p, ports[n] = start(n, write_config(n, nc.urls()))
        procs.append(p)

    # the gateways on s2 (the registry reaches s2 from s1's stream: retried until they may log in)
    ga = [None]

    def gwa_up():
        g = MqttGw(ports["s2"]["mqtt"])
        if g.connack == 0 and g.suback:
            ga[0] = g
            return True
        g.close()
        return False
    check("setup: GWA connects over MQTT to s2 (the registry replicated from s1)",
          srtest.wait_until(gwa_up, timeout=60, step=0.5))
    gwa = ga[0]
    gws.append(gwa)
    gwh = HttpGw(ports["s2"]["http"])
    app = app_on(ports["s1"]["http"], "APW", "wx", "wx-apw-secret-0001")
    check("setup: the app logs in on s1", app is not None)

    # A. immediate, sync
    got = [None]

    def ask_a():
        got[0] = app.call("POST", "/api/v1/current-values", {"dataIds": ["PA1"], "timeoutMs": 10000})
        return got[0][0] != 503   # 503 E4001 until s1 sees GWA's presence
    srtest.wait_until(ask_a, timeout=WAIT, step=0.3)
    st, b = got[0]
    check("A: an immediate request on s1 for GWA (MQTT on s2) is answered 200 with its value",
          st == 200 and values_of(b) == {"PA1": 42.5} and code_of(b) == "0", (st, b))

    def ask_h():
        got[0] = app.call("POST", "/api/v1/current-values", {"dataIds": ["PH1"], "timeoutMs": 10000})
        return got[0][0] != 503
    srtest.wait_until(ask_h, timeout=WAIT, step=0.3)
    st, b = got[0]
    check("A: ... and for GWH (fetching over HTTP on s2) with its value",
          st == 200 and values_of(b) == {"PH1": 7.25}, (st, b))
    st, b = app.call("POST", "/api/v1/current-values", {"dataIds": ["PA1", "PH1"], "timeoutMs": 10000})
    check("A: one request over both gateways: both values", st == 200 and values_of(b) == {"PA1": 42.5, "PH1": 7.25},
          (st, b))

    # B. async, GET /requests/{id}, push
    gwa.values["PA1"] = 43.5
    st, b = app.call("POST", "/api/v1/current-values?async=true", {"dataIds": ["PA1"], "timeoutMs": 10000})
    rid = (b or {}).get("requestId") if isinstance(b, dict) else None
    check("B: an async request on s1: 202 {requestId}", st == 202 and rid, (st, b))
    got = [None]

    def done_b():
        got[0] = app.call("GET", "/api/v1/requests/%s" % rid)
        return got[0][0] == 200 and got[0][1].get("status") not in ("PENDING", "DISPATCHED")
    srtest.wait_until(done_b, timeout=WAIT, step=0.2)
    st, b = got[0]
    check("B: GET /api/v1/requests/{id} on s1: SUCCEEDED with GWA's value",
          st == 200 and b.get("status") == "SUCCEEDED" and values_of(b) == {"PA1": 43.5}, (st, b))
    ok = push.wait_for(lambda r: any(q["path"] == "/hook/requests/%s" % rid for q in r.reqs), timeout=WAIT)
    pushed = [json.loads(q["body"]) for q in push.reqs if q["path"] == "/hook/requests/%s" % rid]
    check("B: its outcome pushed to the app's push URL (SUCCEEDED, the value)",
          pushed and pushed[0].get("status") == "SUCCEEDED" and values_of(pushed[0]) == {"PA1": 43.5},
          (ok, pushed, [q["path"] for q in push.reqs]))

    # C. control
    st, b = app.call("POST", "/api/v1/control-values", {"dataId": "PA2", "value": 35.5, "timeoutMs": 10000})
    check("C: a control request on s1 for GWA on s2: 200, appliedValue 35.5",
          st == 200 and code_of(b) == "0" and b.get("appliedValue") == 35.5, (st, b))
    gwa.mode = "fail"
    st, b = app.call("POST", "/api/v1/control-values", {"dataId": "PA2", "value": 12, "timeoutMs": 10000})
    check("C: a control request the gateway fails: 502 E4003 with the gateway's message",
          st == 502 and code_of(b) == "E4003" and "valve stuck" in json.dumps(b), (st, b))
    gwa.mode = "ok"

    # D. the gateway moves from s2 to s3 with a request open
    gwa.mode = "silent"
    st, b = app.call("POST", "/api/v1/current-values?async=true", {"dataIds": ["PA1"], "timeoutMs": 30000})
    rid = (b or {}).get("requestId") if isinstance(b, dict) else None
    check("D: an async request while GWA is silent: 202", st == 202 and rid, (st, b))
    check("D: GWA got it on s2 (relayed)", gwa.handed(rid), [r.get("requestId") for r in gwa.reqs])
    gwa.close()
    gwa3 = MqttGw(ports["s3"]["mqtt"], values={"PA1": 44.5})  # the open request comes as soon as it subscribes
    gws.append(gwa3)
    check("D: GWA connects to s3", gwa3.connack == 0)
    check("D: the open request is handed to GWA again on s3", gwa3.handed(rid, timeout=30),
          [r.get("requestId") for r in gwa3.reqs])
    got = [None]

    def done_d():
        got[0] = app.call("GET", "/api/v1/requests/%s" % rid)
        return got[0][0] == 200 and got[0][1].get("status") not in ("PENDING", "DISPATCHED")
    srtest.wait_until(done_d, timeout=WAIT, step=0.2)
    st, b = got[0]
    check("D: its answer on s3 settles it on s1: SUCCEEDED with the value given on s3",
          st == 200 and b.get("status") == "SUCCEEDED" and values_of(b) == {"PA1": 44.5}, (st, b))
    st, b = app.call("POST", "/api/v1/current-values", {"dataIds": ["PA1"], "timeoutMs": 10000})
    check("D: a new request after the move goes to s3", st == 200 and values_of(b) == {"PA1": 44.5}, (st, b))

    # E. a gateway on no node
    t0 = time.monotonic()
    st, b = app.call("POST", "/api/v1/current-values", {"dataIds": ["PZ1"], "timeoutMs": 10000})
    check("E: a gateway on no node: 503 E4001 at once (as on one node)",
          st == 503 and code_of(b) == "E4001" and time.monotonic() - t0 < 5, (st, b))

    # F. tenant isolation
    appy1 = app_on(ports["s1"]["http"], "APY", "wy", "wy-apy-secret-0001")
    appy3 = app_on(ports["s3"]["http"], "APY", "wy", "wy-apy-secret-0001")
    n_before = len(gwa3.reqs)
    r1 = appy1.call("POST", "/api/v1/current-values", {"dataIds": ["PA1"], "timeoutMs": 5000}) if appy1 else (0, None)
    r3 = appy3.call("POST", "/api/v1/current-values", {"dataIds": ["PA1"], "timeoutMs": 5000}) if appy3 else (0, None)
    check("F: wy's app asking on s1 for wx's point (its gateway on s3) is refused as on s3 where it is connected",
          r1[0] == r3[0] and r1[0] >= 400 and code_of(r1[1]) == code_of(r3[1]), (r1, r3))
    rc1 = appy1.call("POST", "/api/v1/control-values", {"dataId": "PA2", "value": 1, "timeoutMs": 5000}) \
        if appy1 else (0, None)
    rc3 = appy3.call("POST", "/api/v1/control-values", {"dataId": "PA2", "value": 1, "timeoutMs": 5000}) \
        if appy3 else (0, None)
    check("F: ... and a control of wx's point the same", rc1[0] == rc3[0] and rc1[0] >= 400 and
          code_of(rc1[1]) == code_of(rc3[1]), (rc1, rc3))
    time.sleep(0)  # nothing to wait for: the refusals were answered
    check("F: GWA got no request of wy's app", len(gwa3.reqs) == n_before, gwa3.reqs[n_before:])

    # G. metrics and events
    m1, m2 = metrics(ports["s1"]["http"]), metrics(ports["s2"]["http"])
    sent = m1.get('suiro_cluster_relayed_total{dir="out",kind="request",outcome="sent"}', 0)
    used = m1.get('suiro_cluster_relayed_total{dir="in",kind="result",outcome="used"}', 0)
    taken = m2.get('suiro_cluster_relayed_total{dir="in",kind="request",outcome="used"}', 0)
    check("G: s1 counted the parts it relayed and the results it used; s2 the parts it took",
          sent >= 6 and used >= 6 and taken >= 5, (m1, m2))
    ev2 = [e for e in replay("s2") if "request_transition" in json.dumps(e) and "origin" not in e]
    check("G: s2's own log holds GWA's answers to relayed parts (actor the gateway)",
          any("GWA" in json.dumps(e.get("actor", e)) and "SUCCEEDED" in json.dumps(e) for e in ev2), ev2[:3])
    ev1 = [e for e in replay("s1") if "origin" not in e and "node:s2" in json.dumps(e)]
    check("G: s1's log holds the settlements with the relaying node as their source (node:s2)", ev1, len(ev1))

    # H. monitors across nodes
    def mon_status(api, mon):
        st, b = api.call("GET", "/api/v1/monitors")
        items = b.get("items", b.get("monitors", [])) if isinstance(b, dict) else (b or [])
        return next((x.get("status") for x in items if x.get("monitorId") == mon), None)

    def pushes(mon):
        with push.cv:
            return [json.loads(q["body"]) for q in push.reqs if q["path"] == "/hook/monitors/%s" % mon]

    def pushed_value(mon, value, timeout=WAIT):
        push.wait_for(lambda r: any(v.get("value") == value for b in pushes(mon) for v in b.get("values") or []),
                      timeout=timeout)
        return [b for b in pushes(mon) if any(v.get("value") == value for v in b.get("values") or [])]

    gwa = gwa3   # GWA is on s3 since D: back to s2 for H
    gwa.close()
    ga[0] = None
    check("H: GWA connects to s2 again", srtest.wait_until(gwa_up, timeout=30, step=0.5))
    gwa = ga[0]
    gws.append(gwa)
    st, b = app.call("POST", "/api/v1/monitors", {"dataIds": ["PA1", "PH1"], "intervalMs": 1000})
    m1 = (b or {}).get("monitorId") if isinstance(b, dict) else None
    check("H: the app on s1 starts a monitor of PA1 (GWA) and PH1 (GWH), both on s2: 201 STARTING",
          st == 201 and m1 and b.get("status") == "STARTING", (st, b))
    check("H: GWA (MQTT on s2) is handed PERIODIC_START", gwa.monitor_got(m1, "PERIODIC_START"),
          [r for r in gwa.reqs if r.get("monitorId")])
    start_a = [r for r in gwa.reqs if r.get("monitorId") == m1 and r.get("type") == "PERIODIC_START"]
    check("H: ... with the gateway's own dataIds and the interval, as on one node",
          start_a and start_a[0].get("dataIds") == ["PA1"] and start_a[0].get("intervalMs") == 1000, start_a)
    check("H: GWH (HTTP on s2) is handed PERIODIC_START",
          srtest.wait_until(lambda: ("PERIODIC_START", m1) in gwh.mons, timeout=WAIT, step=0.2), gwh.mons)
    check("H: both acknowledged on s2: the monitor is RUNNING on s1",
          srtest.wait_until(lambda: mon_status(app, m1) == "RUNNING", timeout=WAIT, step=0.2), mon_status(app, m1))
    # the single-node path for comparison: a monitor of s2 itself (the app on s2, GWA on s2)
    app2 = app_on(ports["s2"]["http"], "APW", "wx", "wx-apw-secret-0001")
    st, b = app2.call("POST", "/api/v1/monitors", {"dataIds": ["PA1"], "intervalMs": 1000}) if app2 else (0, None)
    m2 = (b or {}).get("monitorId") if isinstance(b, dict) else None
    check("H: a monitor of s2 itself (app and GWA on s2) for the comparison: RUNNING",
          st == 201 and gwa.monitor_got(m2, "PERIODIC_START") and
          srtest.wait_until(lambda: mon_status(app2, m2) == "RUNNING", timeout=WAIT, step=0.2), (st, b))
    t1 = ts()
    va = [{"dataId": "PA1", "timestamp": t1, "value": 11.5}]
    check("H: GWA's GW_PERIODIC_DATA of the monitor of s1 is acknowledged 0 on s2", gwa.periodic(m1, va) == "0")
    check("H: ... and the same values of s2's own monitor", gwa.periodic(m2, va) == "0")
    p1, p2 = pushed_value(m1, 11.5), pushed_value(m2, 11.5)
    check("H: s1 pushes the values relayed from s2 to the app (POST {url}/monitors/{id})", len(p1) == 1, pushes(m1))
    norm = [dict(x, monitorId="M") for x in p1 + p2]
    check("H: the push's content equals the single-node push of the same values (s2's own monitor)",
          len(norm) == 2 and norm[0] == norm[1], (p1, p2))
    check("H: ... values as AP-IF answers them (dataId, timestamp, value, quality)",
          p1 and p1[0]["values"][0].get("quality") == "GOOD" and p1[0]["values"][0].get("dataId") == "PA1", p1)
    r = gwh.periodic(m1, [{"dataId": "PH1", "timestamp": ts(), "value": 8.25}])
    check("H: GWH's values over HTTP on s2: 200, pushed by s1",
          r and r[0] == 200 and len(pushed_value(m1, 8.25)) == 1, (r, pushes(m1)))
    bad1 = gwa.periodic(m1, [{"dataId": "PA2", "timestamp": ts(), "value": 1}])
    bad2 = gwa.periodic(m2, [{"dataId": "PA2", "timestamp": ts(), "value": 1}])
    check("H: a value the monitor did not ask of GWA is refused on s2 as for s2's own monitor (E1001)",
          bad1 == bad2 == "E1001", (bad1, bad2))
    st, b = app2.call("DELETE", "/api/v1/monitors/%s" % m2) if app2 else (0, None)
    check("H: s2's own monitor stopped", st == 202 and srtest.wait_until(
        lambda: mon_status(app2, m2) == "STOPPED", timeout=WAIT, step=0.2), (st, b))
    # the gateway moves s2 -> s3
    gwa.close()
    gwa3 = MqttGw(ports["s3"]["mqtt"])
    gws.append(gwa3)
    check("H: GWA moved to s3 gets the running monitor's PERIODIC_START again there",
          gwa3.monitor_got(m1, "PERIODIC_START", timeout=30), [r for r in gwa3.reqs if r.get("monitorId")])
    # its ack on s3 reaches s1 (nothing to change: the monitor runs); values from s3 are pushed
    got3 = [None]

    def send3():   # once s3 holds the relayed START (the gateway may answer before)
        got3[0] = gwa3.periodic(m1, [{"dataId": "PA1", "timestamp": ts(), "value": 12.5}])
        return got3[0] == "0"
    srtest.wait_until(send3, timeout=WAIT, step=0.5)
    code3 = got3[0]
    check("H: GWA's values on s3 are acknowledged there and pushed by s1",
          code3 == "0" and len(pushed_value(m1, 12.5)) >= 1, (code3, pushes(m1)))
    check("H: the monitor is still RUNNING on s1", mon_status(app, m1) == "RUNNING", mon_status(app, m1))
    # tenant isolation
    appy3 = appy3 or app_on(ports["s3"]["http"], "APY", "wy", "wy-apy-secret-0001")
    y1 = appy1.call("POST", "/api/v1/monitors", {"dataIds": ["PA1"], "intervalMs": 1000}) if appy1 else (0, None)
    y3 = appy3.call("POST", "/api/v1/monitors", {"dataIds": ["PA1"], "intervalMs": 1000}) if appy3 else (0, None)
    check("H: wy's app starting a monitor of wx's PA1 on s1 is refused as on s3 where GWA is",
          y1[0] == y3[0] and y1[0] >= 400 and code_of(y1[1]) == code_of(y3[1]), (y1, y3))
    check("H: GWA got no monitor of wy's app",
          all(r.get("monitorId") in (m1, m2) for r in gwa3.reqs if r.get("monitorId")), gwa3.reqs)
    # stop on s1
    st, b = app.call("DELETE", "/api/v1/monitors/%s" % m1)
    check("H: stopping on s1: 202 STOPPING", st == 202 and (b or {}).get("status") == "STOPPING", (st, b))
    check("H: GWA (s3) and GWH (s2) are handed PERIODIC_STOP",
          gwa3.monitor_got(m1, "PERIODIC_STOP") and
          srtest.wait_until(lambda: ("PERIODIC_STOP", m1) in gwh.mons, timeout=WAIT, step=0.2), gwh.mons)
    check("H: both acknowledged: STOPPED on s1",
          srtest.wait_until(lambda: mon_status(app, m1) == "STOPPED", timeout=WAIT, step=0.2), mon_status(app, m1))
    # counters and events
    m1x, m2x, m3x = metrics(ports["s1"]["http"]), metrics(ports["s2"]["http"]), metrics(ports["s3"]["http"])
    k = 'suiro_cluster_relayed_total{dir="%s",kind="%s",outcome="%s"}'
    check("H: s2 and s3 sent the monitor's values, s1 used them",
          m2x.get(k % ("out", "data", "sent"), 0) >= 2 and m3x.get(k % ("out", "data", "sent"), 0) >= 1 and
          m1x.get(k % ("in", "data", "used"), 0) >= 3, (m1x, m2x, m3x))
    ev2 = [json.dumps(e) for e in replay("s2") if "origin" not in e]
    check("H: s2's own log holds GWA's values (for the monitor of s1 and for its own) and the acknowledgements of "
          "the relayed parts (actor GWA)",
          sum(1 for e in ev2 if "11.5" in e and '"measurements"' in e and '"GWA"' in e) == 2 and
          any('"request_transition"' in e and '"GWA"' in e and "SUCCEEDED" in e for e in ev2), len(ev2))
    rp1 = replay("s1")
    ev1 = [json.dumps(e) for e in rp1]
    check("H: s1's log holds the monitor's moves decided on s2 (source node:s2) and on s3 (node:s3)",
          any(m1 in e and "RUNNING" in e and "node:s2" in e for e in ev1) and
          any(m1 in e and "STOPPED" in e and ("node:s3" in e or "node:s2" in e) for e in ev1),
          [e for e in ev1 if m1 in e][-4:])
    origins = [(e["origin"].get("node"), e["origin"].get("seq")) for e in rp1 if "origin" in e]
    # A relayed value reaches s1 twice: over the relay (consumer 3) and in the partition's stream (consumer 2,
    # when s1 owns wx's partition). Whichever comes first is applied, the other is a duplicate of its origin, so
    # which consumer shows is a race (under ASan the stream usually wins); test_origins drives consumer 3 itself.
    relayed = [e for e in rp1 if (e.get("origin") or {}).get("consumer") in (2, 3) and "measurements" in e and
               e["origin"].get("node") in ("s2", "s3")]
    relv = {v[1] for e in relayed for p in e["measurements"]["points"] for v in p["values"]}
    check("H: s1's log holds the relayed values as the gateway's node's events (origin s2 or s3; consumer 3 if "
          "the relay came first, 2 if the stream did)",
          {8.25, 11.5, 12.5} <= relv,
          [(e["origin"], sorted(relv)) for e in relayed][-6:])
    check("H: ... each origin once in s1's log (the stream's copy of a relayed event is a duplicate)",
          len(origins) == len(set(origins)), len(origins) - len(set(origins)))

    # I. the monitor's node dies
    st, b = app.call("POST", "/api/v1/monitors", {"dataIds": ["PA1"], "intervalMs": 1000})
    m3 = (b or {}).get("monitorId") if isinstance(b, dict) else None
    check("I: a monitor of PA1 (GWA on s3) RUNNING on s1", st == 201 and gwa3.monitor_got(m3, "PERIODIC_START") and
          srtest.wait_until(lambda: mon_status(app, m3) == "RUNNING", timeout=WAIT, step=0.2), (st, b))
    check("J: s2's list shows the monitor s1 runs as RUNNING once its MonitorEvent reached s2 through the stream",
          app2 is not None and srtest.wait_until(lambda: mon_status(app2, m3) == "RUNNING", timeout=WAIT, step=0.2),
          app2 and mon_status(app2, m3))
    procs[0].kill()
    procs[0].wait(10)
    unheard = k % ("out", "data", "unheard")
    c_before = metrics(ports["s3"]["http"]).get(unheard, 0)
    r = gwa3.periodic(m3, [{"dataId": "PA1", "timestamp": ts(), "value": 13.5}])
    check("I: s1 killed (-9): GWA's values on s3 are still acknowledged 0 (durable on s3)", r == "0", r)
    # J (s1 dead): the monitor's DELETE on s2 is refused 503 E9002 with Retry-After, not lost; the list on s2 still
    # shows the monitor as last recorded (docs/cluster.md "Monitors across nodes", "From any node")
    t0 = time.monotonic()
    jd = srtest.http_once(ports["s2"]["http"], "DELETE", "/api/v1/monitors/%s" % m3, token=app2.token) \
        if app2 else (0, None, b"", None)
    jb = json.loads(jd[2] or b"{}") if jd[0] else {}
    check("J: s1 dead: the DELETE on s2 of the monitor s1 runs is answered 503 E9002 with Retry-After, "
          "naming its node, within seconds",
          jd[0] == 503 and code_of(jb) == "E9002" and "s1" in json.dumps(jb) and
          jd[1].getheader("Retry-After") == "1" and time.monotonic() - t0 < 12, (jd[0], jb))
    check("J: s1 dead: the list on s2 still shows the monitor as last recorded (RUNNING)",
          app2 is not None and mon_status(app2, m3) == "RUNNING", app2 and mon_status(app2, m3))
    check("I: the DATA s1 did not hear is counted unheard on s3",
          srtest.wait_until(lambda: metrics(ports["s3"]["http"]).get(unheard, 0) > c_before, timeout=WAIT, step=0.3),
          metrics(ports["s3"]["http"]))
    ended = [None]

    def relay_ended():   # one value every second: acknowledged until 20 s of unheard DATA end the relay
        ended[0] = gwa3.periodic(m3, [{"dataId": "PA1", "timestamp": ts(), "value": 13.75}])
        return ended[0] != "0"
    t0 = time.monotonic()
    srtest.wait_until(relay_ended, timeout=40, step=1.0)
    check("I: after 20 s unheard s3 ends the monitor's relay: GWA's values of it are refused there as for an "
          "unknown monitor (E3001), not relayed for ever", ended[0] == "E3001" and time.monotonic() - t0 >= 15,
          (ended[0], time.monotonic() - t0))
    n_start = sum(1 for x in gwa3.reqs if x.get("monitorId") == m3 and x.get("type") == "PERIODIC_START")
    p, ports["s1"] = start("s1", os.path.join(T, "s1.ini"))
    procs[0] = p
    app = app_on(ports["s1"]["http"], "APW", "wx", "wx-apw-secret-0001")
    check("I: s1 restarted: the monitor is RUNNING there (as one node after a restart)",
          app is not None and mon_status(app, m3) == "RUNNING", app and mon_status(app, m3))
    check("I: s1 sends its START again to GWA on s3 (as at a reconnection)",
          gwa3.monitor_got(m3, "PERIODIC_START", n=n_start + 1, timeout=40), n_start)
    got_i = [None]

    def send_i():
        got_i[0] = gwa3.periodic(m3, [{"dataId": "PA1", "timestamp": ts(), "value": 14.5}])
        return got_i[0] == "0"
    srtest.wait_until(send_i, timeout=WAIT, step=0.5)
    check("I: GWA's next values are pushed by the restarted s1", len(pushed_value(m3, 14.5)) >= 1, pushes(m3))

    # J. the app's monitors from any node: the app on s2 lists, reads and stops the monitor s1 runs
    def mon_item(api, mon):
        st, b = api.call("GET", "/api/v1/monitors")
        return next((x for x in (b or {}).get("items") or [] if x.get("monitorId") == mon), None) \
            if st == 200 else ("status", st)
    same = [None]

    def listed_alike():
        same[0] = (mon_item(app, m3), mon_item(app2, m3))
        return same[0][0] is not None and same[0][0] == same[0][1]
    check("J: the list on s2 holds the monitor s1 runs exactly as s1 lists it",
          app2 is not None and srtest.wait_until(listed_alike, timeout=WAIT, step=0.3), same[0])
    vals = [None]

    def values_alike():
        vals[0] = (app.call("GET", "/api/v1/monitors/%s/values" % m3), app2.call("GET", "/api/v1/monitors/%s/values" % m3))
        return vals[0][0][0] == 200 and vals[0][0] == vals[0][1] and \
            14.5 in [v.get("value") for v in vals[0][0][1].get("values") or []]
    check("J: GET /api/v1/monitors/{id}/values on s2 answers as on s1 (the values s3 stored)",
          srtest.wait_until(values_alike, timeout=WAIT, step=0.3), vals[0])
    appy2 = app_on(ports["s2"]["http"], "APY", "wy", "wy-apy-secret-0001")
    appy1 = app_on(ports["s1"]["http"], "APY", "wy", "wy-apy-secret-0001")
    y2 = appy2.call("DELETE", "/api/v1/monitors/%s" % m3) if appy2 else (0, None)
    y1 = appy1.call("DELETE", "/api/v1/monitors/%s" % m3) if appy1 else (0, None)
    check("J: wy's app stopping wx's monitor on s2 is refused as on s1 (404 E3001), and it still runs",
          y2 == y1 and y1[0] == 404 and code_of(y1[1]) == "E3001" and mon_status(app, m3) == "RUNNING", (y1, y2))
    check("J: ... and wy's list on s2 does not hold it", appy2 is not None and mon_item(appy2, m3) is None)
    n_stop = sum(1 for x in gwa3.reqs if x.get("monitorId") == m3 and x.get("type") == "PERIODIC_STOP")
    st, b = app2.call("DELETE", "/api/v1/monitors/%s" % m3)
    check("J: the app's DELETE on s2 of the monitor s1 runs: 202 STOPPING (s1's answer)",
          st == 202 and b == {"monitorId": m3, "status": "STOPPING"}, (st, b))
    check("J: GWA (on s3) is handed PERIODIC_STOP", gwa3.monitor_got(m3, "PERIODIC_STOP", n=n_stop + 1), n_stop)
    check("J: GWA's acknowledgement ends it STOPPED on s1, and the list on s2 says so",
          srtest.wait_until(lambda: mon_status(app, m3) == "STOPPED" and mon_status(app2, m3) == "STOPPED",
                            timeout=WAIT, step=0.2), (mon_status(app, m3), mon_status(app2, m3)))
    d2, d1 = app2.call("DELETE", "/api/v1/monitors/%s" % m3), app.call("DELETE", "/api/v1/monitors/%s" % m3)
    check("J: a second DELETE on s2 answers as on s1 (202 STOPPED)", d1 == d2 and d1[0] == 202, (d1, d2))
    m1j, m2j = metrics(ports["s1"]["http"]), metrics(ports["s2"]["http"])
    check("J: s2 asked s1 (relay kind ask) and used its answers; s1 served the asks",
          m2j.get(k % ("out", "ask", "sent"), 0) >= 3 and m2j.get(k % ("out", "ask", "unheard"), 0) >= 1 and
          m2j.get(k % ("in", "answer", "used"), 0) >= 2 and m1j.get(k % ("in", "ask", "used"), 0) >= 2, (m1j, m2j))
    ev1 = [json.dumps(e) for e in replay("s1") if "origin" not in e]
    check("J: s1's own log holds the stop with the app as its actor (made on s1 for the DELETE on s2)",
          any(m3 in e and "STOPPING" in e and '"APW"' in e for e in ev1), [e for e in ev1 if m3 in e][-3:])
    # an async request made on s1, read on s2
    rq = [None]

    def req_alike():
        rq[0] = (app.call("GET", "/api/v1/requests/%s" % rid), app2.call("GET", "/api/v1/requests/%s" % rid))
        return rq[0][0][0] == 200 and rq[0][0] == rq[0][1]
    check("J: GET /api/v1/requests/{id} on s2 of a request made on s1 answers as on s1",
          srtest.wait_until(req_alike, timeout=WAIT, step=0.3), rq[0])
    ry = appy2.call("GET", "/api/v1/requests/%s" % rid) if appy2 else (0, None)
    check("J: ... and wy's app gets 404 E3001 for it on s2", ry[0] == 404 and code_of(ry[1]) == "E3001", ry)
    for n in ("s3", "s2", "s1"):
        check("%s stops cleanly" % n, srtest.stop_server(procs[["s1", "s2", "s3"].index(n)]) == 0)
except Exception as e:  # noqa: BLE001
    check.failed(e)
finally:
    for g in gws:
        try:
            g.close()
        except Exception:  # noqa: BLE001
            pass
    if "gwh" in globals():
        gwh.stop.set()
    push.stop()
    if check.fails:
        for n in ("s2", "s3"):
            try:
                print("---- %s.log (tail)" % n)
                print(open(os.path.join(T, n + ".log")).read()[-3000:])
            except OSError:
                pass
    srtest.finish(check, T, procs, log_name="s1.log")
