#!/usr/bin/python3
"""tests/integration/test_requests.py -- the request flows end to end through
the real `suiro serve`: an app on AP-IF (HTTP, http.client) asks for
current values, control values and monitors; test gateways (python3-paho-mqtt
3.1.1 and 5.0, and one over the GW-IF HTTP binding) receive the requests and
answer them as docs/requests.md and ../shared/docs/interface.md say. The test
decides what each gateway answers: values, failures, or silence.

The server runs on loopback ports chosen at run time and is stopped by its PID
(and restarted once, for the monitor case). Every wait is on a condition with
a timeout; nothing sleeps and hopes. usage: test_requests.py SUIRO_BIN"""
import datetime
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import paho.mqtt.client as mqtt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srtest import Checks, paho_client  # noqa: E402
import srtest  # noqa: E402

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-requests-")
D = os.path.join(T, "data")
LOG = os.path.join(T, "server.log")
check = Checks()
server = None
PORTS = {}
GATEWAYS = []      # every Gateway made, closed at the end

SECRETS = {"GW001": "demo-gw001-secret", "GW002": "demo-gw002-secret"}
APP = ("APP001", "demo", "demo-app001-secret")
APPX = ("APPX", "other", "other-appx-secret-0001")
REQ_ID = re.compile(r"^Q[0-9a-fA-F]{16}$")
MON_ID = re.compile(r"^M[0-9a-fA-F]{16}$")
PEM_HEAD = "-----BEGIN CERTIFICATE-----"
WAIT = 5.0         # longest wait for something that should come at once

OTHER_SHEET = """#suiro-setup-sheet v1
# a second operator, to check that apps cannot reach across operators
[operator]
id,name
other,Other Water Utility

[gateways]
id,name,secret
GWX,Other gateway,other-gwx-secret-0001

[apps]
id,name,secret,push_url
APPX,Other app,other-appx-secret-0001,

[facilities]
id,name
FX,Other plant

[equipment]
id,facility,name
EX,FX,Other pump station

[devices]
id,equipment,gateway,name
DX,EX,GWX,Other controller

[datapoints]
id,device,name,type,unit,min,max,kind
PX1,DX,Other level,number,m,0,10,measure

[grants]
app,datapoint,access
APPX,PX1,both
"""


def run_case(name, fn):
    """One case; an exception fails the case and the next one still runs."""
    print("--", name, flush=True)
    try:
        fn()
    except Exception:
        check(name + " (ran to the end)", False, traceback.format_exc())


# ---- time stamps and ids ----------------------------------------------------

_ts_lock = threading.Lock()
_ts_last = 0


def ts():
    """Now in RFC 3339 UTC with milliseconds, strictly increasing across calls,
    so the newest value sent is always the latest one stored."""
    global _ts_last
    with _ts_lock:
        ms = max(int(time.time() * 1000), _ts_last + 1)
        _ts_last = ms
    t = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


_mid = itertools.count(1)


def new_mid(prefix="t"):
    return "%s-%d" % (prefix, next(_mid))


def envelope(mtype, mid, body):
    return {"header": {"messageType": mtype, "messageId": mid, "timestamp": ts()}, "body": body}


def code_of(js):
    """The result code of an answer: {"result":{"code":…}} (or a bare string)."""
    if not isinstance(js, dict):
        return None
    r = js.get("result")
    if isinstance(r, dict):
        return r.get("code")
    return r


def value_map(vals):
    """[{dataId, value, …}] -> {dataId: value} (the last one of each id)."""
    out = {}
    for v in vals or []:
        if isinstance(v, dict) and "dataId" in v:
            out[v["dataId"]] = v.get("value")
    return out


def poll(fn, pred, timeout=3.0, every=0.05):
    """Call fn() until pred(result) or timeout; the last result either way.
    Stops early on an answer that time cannot change (4xx other than 404)."""
    end = time.monotonic() + timeout
    while True:
        r = fn()
        if pred(r):
            return r
        if isinstance(r, tuple) and r and r[0] in (400, 401, 403, 405, 501):
            return r
        if time.monotonic() >= end:
            return r
        time.sleep(every)


# ---- the server -------------------------------------------------------------

def start_server():
    global server
    server, ports = srtest.start_server(BIN, D, LOG)
    PORTS.clear()
    PORTS.update(ports)


def stop_server():
    """SIGTERM by PID; the exit code (-9 if it had to be killed)."""
    global server
    p, server = server, None
    return srtest.stop_server(p, 20)


# ---- HTTP -------------------------------------------------------------------

def http_call(method, path, body=None, token=None, timeout=15):
    """(status, parsed JSON or None, text, content-type) of one HTTP call."""
    st, r, data, _ = srtest.http_once(PORTS["http"], method, path, None if body is None else json.dumps(body), token,
                                      None if body is None else {"Content-Type": "application/json"}, timeout=timeout)
    raw = data.decode("utf-8", "replace")
    try:
        js = json.loads(raw) if raw else None
    except ValueError:
        js = None
    return st, js, raw, r.getheader("Content-Type", "")


class App:
    """An AP-IF client: a session token, and get/post/delete -> (status, json)."""

    def __init__(self, app_id, op, secret):
        self.app_id, self.op, self.secret = app_id, op, secret
        self.token = None

    def login(self, secret=None):
        st, js, _, _ = http_call("POST", "/api/v1/sessions",
                                 {"appId": self.app_id, "operatorId": self.op, "secret": secret or self.secret})
        if st == 201 and isinstance(js, dict) and js.get("token"):
            self.token = js["token"]
        return st, js

    def call(self, method, path, body=None, timeout=15):
        st, js, _, _ = http_call(method, path, body, self.token, timeout)
        return st, js

    def get(self, path):
        return self.call("GET", path)

    def post(self, path, body, timeout=15):
        return self.call("POST", path, body, timeout)

    def delete(self, path):
        return self.call("DELETE", path)

    def get_raw(self, path):
        st, _, raw, ctype = http_call("GET", path, None, self.token)
        return st, raw, ctype

    # shortcuts
    def current(self, data_ids, timeout_ms=5000, asynchronous=False):
        return self.post("/api/v1/current-values" + ("?async=true" if asynchronous else ""),
                         {"dataIds": data_ids, "timeoutMs": timeout_ms}, timeout=timeout_ms / 1000 + 15)

    def request(self, rid):
        return self.get("/api/v1/requests/" + rid)

    def wait_request(self, rid, statuses, timeout=3.0):
        return poll(lambda: self.request(rid),
                    lambda r: r[0] == 200 and isinstance(r[1], dict) and r[1].get("status") in statuses, timeout)

    def latest(self, did):
        """(status, the latest stored value of did or None)."""
        st, js = self.get("/api/v1/stored-values/latest?dataId=" + did)
        val = None
        if isinstance(js, dict):
            if isinstance(js.get("values"), list):
                val = value_map(js["values"]).get(did)
            elif isinstance(js.get("items"), list):
                val = value_map(js["items"]).get(did)
            elif js.get("dataId") == did:
                val = js.get("value")
        return st, val

    def wait_latest(self, did, want, timeout=3.0):
        return poll(lambda: self.latest(did), lambda r: r[0] == 200 and r[1] == want, timeout)

    def monitor(self, mid):
        """The listed entry of monitor mid (GET /api/v1/monitors), or None."""
        st, js = self.get("/api/v1/monitors")
        if st == 200 and isinstance(js, dict):
            for m in js.get("items") or []:
                if isinstance(m, dict) and m.get("monitorId") == mid:
                    return st, m
        return st, None

    def wait_monitor(self, mid, status, timeout=3.0):
        return poll(lambda: self.monitor(mid), lambda r: r[1] is not None and r[1].get("status") == status, timeout)


# ---- MQTT gateway -----------------------------------------------------------

class Gateway:
    """A test gateway on MQTT. Records every message it receives, per topic
    (the suffix after its root), in a Condition-guarded list. Each request
    pushed on R/requests is handed to `mode`:
      "ok"     answers IMMEDIATE with self.values[dataId] and CONTROL with the value asked for;
      "fail"   answers both with result self.failure;
      "silent" answers nothing (the test answers by hand with answer()).
    Monitor starts and stops are never answered automatically."""

    def __init__(self, gw, v5=False, op="demo", secret=None, topics=("requests", "res/#")):
        self.gw = gw
        self.root = "wip/v1/%s/gw/%s" % (op, gw)
        self.cv = threading.Condition()
        self.msgs = []                 # (suffix, parsed payload)
        self.mode = "ok"
        self.values = {}
        self.failure = {"code": "E4003", "message": "sensor broken"}
        self.answered = {}             # requestId -> {"mid": messageId, "values": {dataId: value}}
        self.connack = None
        self.suback = None
        self.disconnected = False
        GATEWAYS.append(self)
        self.c = paho_client(gw, mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
        self.c.username_pw_set("%s/%s" % (op, gw), secret or SECRETS[gw])
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_subscribe = self._on_subscribe
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", PORTS["mqtt"], keepalive=30)
        self.c.loop_start()
        self.wait_for(lambda g: g.connack is not None or g.disconnected, 10)
        if self.connack == 0 and topics:
            self.c.subscribe([(self.root + "/" + t, 0) for t in topics])
            self.wait_for(lambda g: g.suback is not None, 10)

    # paho callbacks (network thread)
    def _on_connect(self, c, u, flags, rc, props=None):
        with self.cv:
            self.connack = rc if isinstance(rc, int) else rc.value
            self.cv.notify_all()

    def _on_disconnect(self, c, u, rc, props=None):
        with self.cv:
            self.disconnected = True
            self.cv.notify_all()

    def _on_subscribe(self, c, u, mid, granted, props=None):
        with self.cv:
            self.suback = [g if isinstance(g, int) else g.value for g in granted]
            self.cv.notify_all()

    def _on_message(self, c, u, msg):
        suffix = msg.topic[len(self.root) + 1:] if msg.topic.startswith(self.root + "/") else msg.topic
        try:
            m = json.loads(msg.payload)
        except ValueError:
            m = {"unparsable": msg.payload.decode("utf-8", "replace")}
        with self.cv:
            self.msgs.append((suffix, m))
            self.cv.notify_all()
        if suffix == "requests" and isinstance(m, dict):
            for req in (m.get("body") or {}).get("requests") or []:
                self._auto(req)

    def _auto(self, req):
        t = req.get("type")
        if t not in ("IMMEDIATE", "CONTROL") or self.mode == "silent":
            return
        self.answer(req, failure=self.failure if self.mode == "fail" else None)

    # waiting and looking
    def wait_for(self, pred, timeout=WAIT):
        with self.cv:
            return self.cv.wait_for(lambda: pred(self), timeout)

    def messages(self, suffix):
        with self.cv:
            return [m for s, m in self.msgs if s == suffix]

    def pushed(self):
        """Every request pushed on R/requests, in order."""
        out = []
        for m in self.messages("requests"):
            out.extend((m.get("body") or {}).get("requests") or [])
        return out

    def pushed_for(self, rid):
        return [r for r in self.pushed() if r.get("requestId") == rid]

    def wait_pushed(self, pred, timeout=WAIT):
        """The first pushed request matching pred, or None."""
        found = []

        def look(g):
            found[:] = [r for r in g.pushed() if pred(r)]
            return bool(found)
        self.wait_for(look, timeout)
        return found[0] if found else None

    def wait_msg(self, suffix, pred, timeout=WAIT):
        found = []

        def look(g):
            found[:] = [m for m in g.messages(suffix) if pred(m)]
            return bool(found)
        self.wait_for(look, timeout)
        return found[0] if found else None

    def ack(self, mid, timeout=WAIT):
        """The result of the GW_ACK whose correlationId is mid, or None."""
        m = self.wait_msg("res/ack", lambda m: (m.get("header") or {}).get("correlationId") == mid, timeout)
        return (m.get("body") or {}).get("result") if m else None

    # publishing
    def send(self, suffix, mtype, body, mid=None):
        mid = mid or new_mid(self.gw)
        self.c.publish(self.root + "/" + suffix, json.dumps(envelope(mtype, mid, body)), qos=1)
        return mid

    def answer(self, req, failure=None, values=None):
        """Answer one request (IMMEDIATE or CONTROL); the messageId used."""
        rid = req.get("requestId")
        if req.get("type") == "CONTROL":
            body = {"requestId": rid, "dataId": req.get("dataId")}
            if failure:
                body["result"] = failure
            else:
                body["appliedValue"] = req.get("value")
                body["result"] = "0"
            mtype, suffix = "GW_CONTROL_RESULT", "ack/control"
            sent = {} if failure else {req.get("dataId"): req.get("value")}
        else:
            vals = {} if failure else {d: (values or self.values).get(d) for d in req.get("dataIds") or []}
            body = {"requestId": rid, "values": [{"dataId": d, "timestamp": ts(), "value": v} for d, v in vals.items()],
                    "result": failure or "0"}
            mtype, suffix = "GW_IMMEDIATE_RESULT", "data/immediate"
            sent = vals
        mid = new_mid(self.gw)
        with self.cv:   # before publishing: the app may have its answer before send() returns
            self.answered[rid] = {"mid": mid, "values": sent}
        return self.send(suffix, mtype, body, mid)

    def close(self):
        try:
            self.c.disconnect()
        finally:
            self.c.loop_stop()
        self.wait_for(lambda g: g.disconnected, 5)


def gw_http_login(gw):
    st, js, _, _ = http_call("POST", "/gw/v1/sessions", {"operatorId": "demo", "gatewayId": gw, "secret": SECRETS[gw]})
    return st, (js or {}).get("token") if isinstance(js, dict) else None


# ---- the cases --------------------------------------------------------------

app = App(*APP)
g1 = g2 = None


def case_sessions():
    a = App(*APP)
    st, js = a.login()
    check("AP-IF session: connect gives 201 {token, expiresAt}",
          st == 201 and isinstance(js, dict) and js.get("token") and js.get("expiresAt"), (st, js))
    bad = App(*APP)
    st, js = bad.login(secret="wrong-secret-for-app")
    check("AP-IF session: a wrong secret gets 401 E2001", st == 401 and code_of(js) == "E2001", (st, js))
    st, js = App(*APP).get("/api/v1/monitors")
    check("AP-IF session: a call without a token gets 401 E2001", st == 401 and code_of(js) == "E2001", (st, js))
    st, js = a.get("/api/v1/monitors")
    check("AP-IF session: the token works", st == 200, (st, js))
    st, js = a.delete("/api/v1/sessions/current")
    check("AP-IF session: disconnect gets 204", st == 204, (st, js))
    st, js = a.get("/api/v1/monitors")
    check("AP-IF session: the token no longer works after disconnect",
          st == 401 and code_of(js) in ("E2001", "E2002"), (st, js))
    st, js = app.login()
    check("AP-IF session: the app used by the other cases logs in", st == 201, (st, js))


def case_connect_gateways():
    global g1, g2
    g1 = Gateway("GW001")
    g1.values = {"P001": 1234.5, "P002": 0.75, "P004": 17}
    check("GW001 connects and subscribes to R/requests and R/res/#", g1.connack == 0 and g1.suback == [0, 0],
          (g1.connack, g1.suback))
    g2 = Gateway("GW002")
    g2.values = {"P006": 7.25, "P008": 1.5}
    check("GW002 connects and subscribes to R/requests and R/res/#", g2.connack == 0 and g2.suback == [0, 0],
          (g2.connack, g2.suback))


def case_immediate():
    g1.mode = g2.mode = "ok"
    st, js = app.current(["P001", "P002"], 5000)
    rid = js.get("requestId") if isinstance(js, dict) else None
    got = value_map(js.get("values")) if isinstance(js, dict) else {}
    check("immediate: 200 with a requestId and result code 0", st == 200 and rid and code_of(js) == "0", (st, js))
    check("immediate: the requestId is Q + 16 hex digits", bool(rid and REQ_ID.match(rid)), rid)
    sent = g1.answered.get(rid, {}).get("values")
    check("immediate: the values are those the gateway sent", sent and got == sent == {"P001": 1234.5, "P002": 0.75},
          (got, sent))
    parts = g1.pushed_for(rid) if rid else []
    check("immediate: GW001 received exactly one IMMEDIATE request with that requestId and both dataIds",
          len(parts) == 1 and parts[0].get("type") == "IMMEDIATE" and sorted(parts[0].get("dataIds") or []) ==
          ["P001", "P002"] and isinstance(parts[0].get("deadline"), str), parts or g1.pushed())
    check("immediate: GW002 received nothing of it", rid and not g2.pushed_for(rid), g2.pushed())
    mid = g1.answered.get(rid, {}).get("mid")
    res = g1.ack(mid) if mid else None
    check("immediate: the gateway's result is acknowledged (GW_ACK code 0)", code_of({"result": res}) == "0", res)
    st, val = app.wait_latest("P001", 1234.5)
    check("immediate: the value is stored (stored-values/latest)", st == 200 and val == 1234.5, (st, val))

    # split across two gateways, one requestId
    st, js = app.current(["P001", "P006"], 5000)
    rid = js.get("requestId") if isinstance(js, dict) else None
    got = value_map(js.get("values")) if isinstance(js, dict) else {}
    check("two gateways: 200 with both values", st == 200 and got == {"P001": 1234.5, "P006": 7.25}, (st, js))
    p1, p2 = (g1.pushed_for(rid), g2.pushed_for(rid)) if rid else ([], [])
    check("two gateways: each gateway gets only its own points, under the same requestId",
          len(p1) == 1 and len(p2) == 1 and p1[0].get("dataIds") == ["P001"] and p2[0].get("dataIds") == ["P006"],
          (p1, p2))


def case_timeout():
    g1.mode = "silent"
    try:
        seen = {r.get("requestId") for r in g1.pushed()}
        t0 = time.monotonic()
        st, js = app.current(["P002"], 800)
        el = time.monotonic() - t0
        # it waited for its timeoutMs (800): the loop's timer runs on the
        # loop's cached clock and may fire a fraction of a ms early by ours
        check("timeout: a silent gateway gives 504 E4002 after its timeout (~0.8 s; well before the default 10 s)",
              st == 504 and code_of(js) == "E4002" and 0.75 <= el < 5, (st, js, el))
        req = g1.wait_pushed(lambda r: r.get("type") == "IMMEDIATE" and r.get("dataIds") == ["P002"] and
                             r.get("requestId") not in seen, WAIT if st == 504 else 0)
        rid = req.get("requestId") if req else None
        check("timeout: the silent gateway did receive the request", rid, g1.pushed())
        if not rid:
            return
        st, js = app.wait_request(rid, ("TIMED_OUT", "SUCCEEDED", "FAILED"))
        check("timeout: GET /api/v1/requests/{id} says TIMED_OUT",
              st == 200 and js.get("status") == "TIMED_OUT" and js.get("requestId") == rid, (st, js))
        mid = g1.answer(req, values={"P002": 1.25})
        res = g1.ack(mid)
        check("timeout: a late GW_IMMEDIATE_RESULT is still acknowledged (GW_ACK code 0)",
              code_of({"result": res}) == "0", res)
        st, val = app.wait_latest("P002", 1.25)
        check("timeout: ... and its values are stored", st == 200 and val == 1.25, (st, val))
        st, js = app.request(rid)
        check("timeout: ... and the request stays TIMED_OUT", st == 200 and js.get("status") == "TIMED_OUT", (st, js))
    finally:
        g1.mode = "ok"


def case_async():
    g1.mode = "silent"
    try:
        st, js = app.current(["P004"], 5000, asynchronous=True)
        rid = js.get("requestId") if isinstance(js, dict) else None
        check("async: 202 {requestId, status PENDING}",
              st == 202 and rid and js.get("status", "PENDING") in ("PENDING", "DISPATCHED"), (st, js))
        if not rid:
            return
        req = g1.wait_pushed(lambda r: r.get("requestId") == rid)
        check("async: the gateway receives the request", req and req.get("dataIds") == ["P004"], g1.pushed())
        st, js = app.request(rid)
        check("async: before the answer the request is PENDING or DISPATCHED",
              st == 200 and js.get("status") in ("PENDING", "DISPATCHED"), (st, js))
        if not req:
            return
        mid = g1.answer(req)
        res = g1.ack(mid)
        check("async: the answer is acknowledged (GW_ACK code 0)", code_of({"result": res}) == "0", res)
        st, js = app.wait_request(rid, ("SUCCEEDED", "FAILED", "TIMED_OUT"))
        check("async: GET /api/v1/requests/{id} says SUCCEEDED with the values",
              st == 200 and js.get("status") == "SUCCEEDED" and value_map(js.get("values")) == {"P004": 17}, (st, js))
    finally:
        g1.mode = "ok"


def case_gateway_failure():
    g1.mode = "fail"
    g1.failure = {"code": "E4003", "message": "sensor broken"}
    try:
        st, js = app.current(["P005"], 5000)
        check("gateway failure: the app gets 502 E4003", st == 502 and code_of(js) == "E4003", (st, js))
        req = g1.wait_pushed(lambda r: r.get("dataIds") == ["P005"], WAIT if st == 502 else 0)
        rid = req.get("requestId") if req else None
        mid = g1.answered.get(rid, {}).get("mid")
        res = g1.ack(mid) if mid else None
        check("gateway failure: the failure result is acknowledged (GW_ACK code 0)", code_of({"result": res}) == "0",
              res)
        st, js = app.wait_request(rid, ("FAILED", "SUCCEEDED", "TIMED_OUT")) if rid else (None, None)
        check("gateway failure: the request is FAILED", st == 200 and js.get("status") == "FAILED", (st, js))
    finally:
        g1.mode = "ok"


def case_unknown_request():
    st, before = app.latest("P001")
    mid = g1.send("data/immediate", "GW_IMMEDIATE_RESULT",
                  {"requestId": "Qnope", "values": [{"dataId": "P001", "timestamp": ts(), "value": 4321.0}],
                   "result": "0"})
    res = g1.ack(mid)
    check("unknown request: GW_ACK E3001 on R/res/ack (correlationId = messageId)", code_of({"result": res}) == "E3001",
          res)
    st2, after = app.latest("P001")
    check("unknown request: its values are not stored (latest unchanged)",
          st == st2 == 200 and after == before and after != 4321.0, (before, after))


def case_control():
    g1.mode = g2.mode = "ok"
    # APP001's registered certificate (main): the signature covers the exact bytes of "value" (docs/signatures.md)
    prot = APP_SIGNER.protection(b"42.5")
    st, js = app.post("/api/v1/control-values", {"dataId": "P007", "value": 42.5, "protection": prot})
    rid = js.get("requestId") if isinstance(js, dict) else None
    check("control: 200 {requestId, result code 0, appliedValue 42.5}",
          st == 200 and rid and code_of(js) == "0" and js.get("appliedValue") == 42.5, (st, js))
    parts = g2.pushed_for(rid) if rid else []
    req = parts[0] if len(parts) == 1 else {}
    check("control: GW002 gets one CONTROL with dataId P007, value 42.5 and appId APP001",
          req.get("type") == "CONTROL" and req.get("dataId") == "P007" and req.get("value") == 42.5 and
          req.get("appId") == "APP001", parts or g2.pushed())
    check("control: the app's protection reaches the gateway exactly as sent", req.get("protection") == prot, req)

    def barrier():
        """A request both gateways answer: anything sent to them before it
        has arrived before it (one connection each, in order)."""
        st, js = app.current(["P001", "P006"], 5000)
        return js.get("requestId") if st == 200 and isinstance(js, dict) else None

    def nothing_reached(marks, name):
        b = barrier()
        new1, new2 = g1.pushed()[marks[0]:], g2.pushed()[marks[1]:]
        check(name + ": no request reaches a gateway",
              b and all(r.get("requestId") == b for r in new1 + new2) and new1 and new2, (b, new1, new2))

    for name, dataid, value, codes in (
            ("control out of range (P007 = 150)", "P007", 150, (("422", "E4004"),)),
            ("control of a measure-only point (P001)", "P001", 10, (("422", "E4004"),)),
            ("control with the wrong type (P003 = \"yes\")", "P003", "yes", (("422", "E4004"), ("400", "E1001")))):
        marks = (len(g1.pushed()), len(g2.pushed()))
        st, js = app.post("/api/v1/control-values", {"dataId": dataid, "value": value})
        check(name + ": " + " or ".join(s + " " + c for s, c in codes), (str(st), code_of(js)) in codes, (st, js))
        nothing_reached(marks, name)

    g2.mode = "fail"
    g2.failure = {"code": "E4003", "message": "valve stuck"}
    try:
        st, js = app.post("/api/v1/control-values", {"dataId": "P010", "value": "AUTO"})
        check("control: a gateway failure gives 502 E4003", st == 502 and code_of(js) == "E4003", (st, js))
        g2.mode = "silent"
        t0 = time.monotonic()
        st, js = app.post("/api/v1/control-values", {"dataId": "P007", "value": 10, "timeoutMs": 800})
        el = time.monotonic() - t0
        check("control: a silent gateway gives 504 E4002 after its timeout (~0.8 s)",
              st == 504 and code_of(js) == "E4002" and 0.75 <= el < 5, (st, js, el))
    finally:
        g2.mode = "ok"


def case_certificates():
    mid = g1.send("req/cert", "GW_CERT_REQ", {"subjectType": "platform", "subjectId": "platform"})
    m = g1.wait_msg("res/cert", lambda m: (m.get("header") or {}).get("correlationId") in (mid, None))
    pem_mqtt = ((m or {}).get("body") or {}).get("pem") or ""
    check("certificate over MQTT: GW_CERT_RES on R/res/cert with a PEM certificate",
          m and (m.get("header") or {}).get("messageType") == "GW_CERT_RES" and pem_mqtt.startswith(PEM_HEAD), m)
    st, pem_app, ctype = app.get_raw("/api/v1/certificates/platform/platform")
    check("certificate over AP-IF: 200 PEM", st == 200 and pem_app.startswith(PEM_HEAD), (st, ctype, pem_app[:200]))
    st, tok = gw_http_login("GW001")
    check("GW HTTP session: POST /gw/v1/sessions gives 201 {token}", st == 201 and tok, st)
    st, _, pem_gw, ctype = http_call("GET", "/gw/v1/certificates/platform/platform", token=tok)
    check("certificate over GW HTTP: 200 PEM", st == 200 and pem_gw.startswith(PEM_HEAD), (st, ctype, pem_gw[:200]))
    check("certificate: the same platform certificate on every binding",
          pem_mqtt.strip() and pem_mqtt.strip() == pem_app.strip() == pem_gw.strip())
    st, js = app.get("/api/v1/certificates/app/NOAPP")
    check("certificate of an unknown app: 404 E3001", st == 404 and code_of(js) == "E3001", (st, js))
    # only the platform's own id ("platform") names the platform certificate
    for other in ("GW001", "APP001", "platform2", "x"):
        st, js = app.get("/api/v1/certificates/platform/" + other)
        check("certificate platform/%s over AP-IF: 404 E3001" % other, st == 404 and code_of(js) == "E3001", (st, js))
        st, _, body, _ = http_call("GET", "/gw/v1/certificates/platform/" + other, token=tok)
        check("certificate platform/%s over GW HTTP: 404 E3001" % other, st == 404 and "E3001" in body, (st, body))
    # (over MQTT: test_gw_answers.py's table)


def case_offline():
    g2.close()
    t0 = time.monotonic()
    st, js = app.current(["P006"], 5000)
    el = time.monotonic() - t0
    check("offline: current-values for a disconnected gateway gives 503 E4001 at once (< 2 s)",
          st == 503 and code_of(js) == "E4001" and el < 2, (st, js, el))
    t0 = time.monotonic()
    st, js = app.current(["P001", "P006"], 5000)
    el = time.monotonic() - t0
    check("offline: one of two gateways disconnected gives 503 E4001 at once too",
          st == 503 and code_of(js) == "E4001" and el < 2, (st, js, el))


def case_fetch():
    gf = Gateway("GW002", v5=True, topics=("res/#",))   # not subscribed to R/requests
    gf.values = {"P008": 1.5}
    try:
        check("fetch: GW002 connects over MQTT 5.0 subscribed to R/res/# only", gf.connack == 0 and gf.suback == [0],
              (gf.connack, gf.suback))
        st, js = app.current(["P008"], 10000, asynchronous=True)
        rid = js.get("requestId") if isinstance(js, dict) else None
        check("fetch: an async request for it gets 202 {requestId}", st == 202 and rid, (st, js))
        mid = gf.send("req/fetch", "GW_FETCH_REQ", {"maxItems": 10})
        m = gf.wait_msg("res/fetch", lambda m: (m.get("header") or {}).get("correlationId") == mid)
        reqs = ((m or {}).get("body") or {}).get("requests") or []
        mine = [r for r in reqs if r.get("requestId") == rid]
        check("fetch: GW_FETCH_RES on R/res/fetch (correlationId = the fetch's messageId) holds the request",
              m and (m.get("header") or {}).get("messageType") == "GW_FETCH_RES" and len(mine) == 1 and
              mine[0].get("type") == "IMMEDIATE" and mine[0].get("dataIds") == ["P008"], m)
        check("fetch: nothing was pushed to a gateway not subscribed to R/requests", m and not gf.messages("requests"),
              gf.messages("requests"))
        if not mine:
            return
        amid = gf.answer(mine[0])
        res = gf.ack(amid)
        check("fetch: the fetched request's answer is acknowledged (GW_ACK code 0)", code_of({"result": res}) == "0",
              res)
        st, js = app.wait_request(rid, ("SUCCEEDED", "FAILED", "TIMED_OUT"))
        check("fetch: ... and the request SUCCEEDED with the value",
              st == 200 and js.get("status") == "SUCCEEDED" and value_map(js.get("values")) == {"P008": 1.5}, (st, js))
    finally:
        gf.close()


def case_http_longpoll():
    st, tok = gw_http_login("GW002")
    check("HTTP gateway: GW002 logs in over HTTP (201 {token})", st == 201 and tok, st)

    def fetch(wait_ms, timeout=15):
        return http_call("POST", "/gw/v1/requests/fetch",
                         {"header": {"messageType": "GW_FETCH_REQ", "messageId": new_mid("hf"), "timestamp": ts()},
                          "body": {"maxItems": 10, "waitMs": wait_ms}}, token=tok, timeout=timeout)

    # nothing pending: waits waitMs, then 200 with no requests (and GW002 counts as connected from now on)
    t0 = time.monotonic()
    st, js, raw, _ = fetch(300)
    el = time.monotonic() - t0
    body = (js or {}).get("body") if isinstance(js, dict) else None
    # it waited (an immediate answer takes milliseconds); the loop's timer runs
    # on the loop's cached clock, so it may fire a few ms before 0.3 s of ours
    check("HTTP gateway: a fetch with nothing pending answers 200 with no requests after waiting (~0.3 s)",
          st == 200 and isinstance(body, dict) and body.get("requests") == [] and 0.25 <= el < 3,
          (st, raw[:300], el))

    got = {}
    done = threading.Event()
    started = threading.Event()

    def gateway():
        try:
            end = time.monotonic() + 10
            started.set()
            while time.monotonic() < end and "req" not in got:
                st, js, raw, _ = fetch(5000)
                if st != 200:
                    got["fetch_error"] = (st, raw[:300])
                    return
                for r in ((js or {}).get("body") or {}).get("requests") or []:
                    if r.get("type") == "IMMEDIATE" and r.get("dataIds") == ["P006"] and "req" not in got:
                        got["req"], got["t"] = r, time.monotonic()
                        env = envelope("GW_IMMEDIATE_RESULT", new_mid("hr"),
                                       {"requestId": r.get("requestId"),
                                        "values": [{"dataId": "P006", "timestamp": ts(), "value": 9.5}],
                                        "result": "0"})
                        st2, js2, raw2, _ = http_call("POST", "/gw/v1/immediate-results", env, token=tok)
                        got["post"] = (st2, js2, raw2[:300])
        except Exception:
            got["exc"] = traceback.format_exc()
        finally:
            done.set()

    th = threading.Thread(target=gateway, daemon=True)
    th.start()
    started.wait(5)
    t0 = time.monotonic()
    st, js = app.current(["P006"], 5000)
    done.wait(12 if st == 200 else 0.5)
    req = got.get("req") or {}
    check("HTTP gateway: the long-poll fetch returns the IMMEDIATE request well before waitMs (< 2.5 s)",
          req and req.get("requestId") == (js or {}).get("requestId") and got["t"] - t0 < 2.5,
          (got, time.monotonic() - t0))
    post = got.get("post") or (None, None, None)
    check("HTTP gateway: POST /gw/v1/immediate-results answers 200 (code 0)", post[0] == 200 and code_of(post[1]) == "0",
          post)
    check("HTTP gateway: the app gets 200 with the value",
          st == 200 and value_map((js or {}).get("values")) == {"P006": 9.5}, (st, js))


def case_authorization():
    ax = App(*APPX)
    st, js = ax.login()
    check("authorization: APPX of operator 'other' logs in", st == 201, (st, js))

    def same(name, a, ids, call):
        """call(a, id) for each id: the same status, code and (ids masked) message."""
        outs = []
        for i in ids:
            st, js = call(a, i)
            res = json.dumps((js or {}).get("result") if isinstance(js, dict) else js, sort_keys=True)
            for j in ids:
                res = res.replace(j, "<id>")
            outs.append((st, code_of(js), res))
        check(name, len(set(outs)) == 1 and outs[0][:2] in ((403, "E2003"), (404, "E3001")), outs)

    cur = lambda a, i: a.current([i], 1000)
    same("authorization: APPX asking current-values of P001 (operator demo) and ZZZ (unknown) gets the same answer",
         ax, ("P001", "ZZZ"), cur)
    same("authorization: the same for stored-values/latest", ax, ("P001", "ZZZ"),
         lambda a, i: a.get("/api/v1/stored-values/latest?dataId=" + i))
    same("authorization: the same for control-values", ax, ("P007", "ZZZ"),
         lambda a, i: a.post("/api/v1/control-values", {"dataId": i, "value": 1}))
    same("authorization: the same for monitors", ax, ("P001", "ZZZ"),
         lambda a, i: a.post("/api/v1/monitors", {"dataIds": [i], "intervalMs": 1000}))
    same("authorization: APP001 asking for PX1 (operator other) and ZZZ gets the same answer", app, ("PX1", "ZZZ"),
         cur)
    st, js = app.current(["P001"], 5000, asynchronous=True)
    rid = js.get("requestId") if st == 202 and isinstance(js, dict) else None
    if rid:
        same("authorization: another operator's request and an unknown one look alike", ax,
             (rid, "Q0000000000000000"), lambda a, i: a.request(i))
    else:
        check("authorization: an async request to look at from another operator", False, (st, js))
    st, js = ax.current(["PX1"], 1000)
    check("authorization: APPX's own point passes the check (its gateway is offline: 503 E4001)",
          st == 503 and code_of(js) == "E4001", (st, js))


def case_monitors():
    global g1, app
    g1.mode = "ok"
    st, js = app.post("/api/v1/monitors", {"dataIds": ["P001"], "intervalMs": 200})
    mon = js.get("monitorId") if isinstance(js, dict) else None
    check("monitor: 201 {monitorId, status STARTING}", st == 201 and mon and js.get("status") == "STARTING", (st, js))
    check("monitor: the monitorId is M + 16 hex digits", bool(mon and MON_ID.match(mon)), mon)
    if not mon:
        return
    start = g1.wait_pushed(lambda r: r.get("type") == "PERIODIC_START" and r.get("monitorId") == mon)
    check("monitor: GW001 gets PERIODIC_START with the monitorId, dataIds and intervalMs",
          start and start.get("dataIds") == ["P001"] and start.get("intervalMs") == 200, g1.pushed())
    st, m = app.monitor(mon)
    check("monitor: listed STARTING until the gateway acks", m and m.get("status") == "STARTING", (st, m))
    mid = g1.send("ack/monitor", "GW_MONITOR_ACK", {"monitorId": mon, "action": "START", "result": "0"})
    res = g1.ack(mid)
    check("monitor: the START ack is acknowledged (GW_ACK code 0)", code_of({"result": res}) == "0", res)
    st, m = app.wait_monitor(mon, "RUNNING")
    check("monitor: GET /api/v1/monitors lists it RUNNING with its dataIds and interval",
          m and m.get("status") == "RUNNING" and m.get("dataIds") == ["P001"] and m.get("intervalMs") == 200, (st, m))
    mid = g1.send("data/periodic", "GW_PERIODIC_DATA",
                  {"monitorId": mon, "values": [{"dataId": "P001", "timestamp": ts(), "value": 2222.5}]})
    res = g1.ack(mid)
    check("monitor: GW_PERIODIC_DATA is acknowledged (GW_ACK code 0)", code_of({"result": res}) == "0", res)
    st, val = app.wait_latest("P001", 2222.5)
    check("monitor: ... and its value is stored", st == 200 and val == 2222.5, (st, val))

    # restart: the monitor survives, and is sent again to the gateway when it reconnects
    rc = stop_server()
    check("monitor: SIGTERM stops the server cleanly for the restart (exit 0)", rc == 0, rc)
    g1.close()
    start_server()
    app = App(*APP)
    st, js = app.login()
    check("monitor: the app logs in again after the restart", st == 201, (st, js))
    st, m = app.wait_monitor(mon, "RUNNING")
    check("monitor: after a restart it is still listed RUNNING", m and m.get("status") == "RUNNING", (st, m))
    g1 = Gateway("GW001")
    g1.mode = "silent"
    again = g1.wait_pushed(lambda r: r.get("type") == "PERIODIC_START" and r.get("monitorId") == mon)
    check("monitor: GW001 reconnecting gets PERIODIC_START for it again",
          again and again.get("dataIds") == ["P001"] and again.get("intervalMs") == 200, g1.pushed())
    if again:
        res = g1.ack(g1.send("ack/monitor", "GW_MONITOR_ACK", {"monitorId": mon, "action": "START", "result": "0"}))
        check("monitor: the renewed START ack is acknowledged", code_of({"result": res}) == "0", res)

    # stop
    st, js = app.delete("/api/v1/monitors/" + mon)
    check("monitor: DELETE gives 202 {status STOPPING}", st == 202 and (js or {}).get("status") == "STOPPING", (st, js))
    stop = g1.wait_pushed(lambda r: r.get("type") == "PERIODIC_STOP" and r.get("monitorId") == mon,
                          WAIT if st == 202 else 0)
    check("monitor: GW001 gets PERIODIC_STOP with the monitorId", stop, g1.pushed())
    st, m = app.monitor(mon)
    check("monitor: listed STOPPING until the gateway acks", m and m.get("status") == "STOPPING", (st, m))
    res = g1.ack(g1.send("ack/monitor", "GW_MONITOR_ACK", {"monitorId": mon, "action": "STOP", "result": "0"}))
    check("monitor: the STOP ack is acknowledged (GW_ACK code 0)", code_of({"result": res}) == "0", res)
    st, m = app.wait_monitor(mon, "STOPPED")
    check("monitor: then listed STOPPED", m and m.get("status") == "STOPPED", (st, m))
    st, js = app.delete("/api/v1/monitors/Mffffffffffffffff")
    check("monitor: DELETE of an unknown monitor gives 404 E3001", st == 404 and code_of(js) == "E3001", (st, js))


def iso_ms(ms):
    t = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def ms_of(s):
    """RFC 3339 (Z, optional fraction) -> ms, or None."""
    try:
        t = datetime.datetime.strptime(s.replace("Z", "+00:00"), "%Y-%m-%dT%H:%M:%S.%f%z" if "." in s
                                       else "%Y-%m-%dT%H:%M:%S%z")
    except (AttributeError, ValueError):
        return None
    return round(t.timestamp() * 1000)


def case_monitor_end():
    """startAt / endAt: sent to the gateway; an endAt in the past refused; at
    endAt the server stops the monitor itself, and no value after it is stored."""
    global g1
    g1.mode = "silent"
    now = int(time.time() * 1000)
    st, js = app.post("/api/v1/monitors", {"dataIds": ["P001"], "intervalMs": 200, "endAt": iso_ms(now - 1000)})
    check("monitor end: an endAt in the past gives 400 E1001", st == 400 and code_of(js) == "E1001", (st, js))
    st, js = app.get("/api/v1/monitors")
    ends = [m.get("endAt") for m in (js or {}).get("items", [])]
    check("monitor end: ... and no monitor is made", iso_ms(now - 1000) not in ends and st == 200, (st, js))
    start_ms, end_ms = now, now + 3000
    st, js = app.post("/api/v1/monitors", {"dataIds": ["P001"], "intervalMs": 200,
                                           "startAt": iso_ms(start_ms), "endAt": iso_ms(end_ms)})
    mon = js.get("monitorId") if isinstance(js, dict) else None
    check("monitor end: 201 for startAt now and endAt in 3 s", st == 201 and mon, (st, js))
    if not mon:
        return
    start = g1.wait_pushed(lambda r: r.get("type") == "PERIODIC_START" and r.get("monitorId") == mon)
    check("monitor end: PERIODIC_START carries startAt and endAt",
          start and ms_of(start.get("startAt")) == start_ms and ms_of(start.get("endAt")) == end_ms, start)
    res = g1.ack(g1.send("ack/monitor", "GW_MONITOR_ACK", {"monitorId": mon, "action": "START", "result": "0"}))
    st, m = app.wait_monitor(mon, "RUNNING")
    check("monitor end: RUNNING once acked", m and m.get("status") == "RUNNING", (st, m, res))
    res = g1.ack(g1.send("data/periodic", "GW_PERIODIC_DATA",
                         {"monitorId": mon, "values": [{"dataId": "P001", "timestamp": ts(), "value": 3333.5}]}))
    check("monitor end: a value before endAt is stored (0)", code_of({"result": res}) == "0", res)
    late = {"dataId": "P001", "timestamp": iso_ms(end_ms + 1000), "value": 4444.5}
    res = g1.ack(g1.send("data/periodic", "GW_PERIODIC_DATA", {"monitorId": mon, "values": [late]}))
    check("monitor end: a value timestamped after endAt is refused (E1001)", code_of({"result": res}) == "E1001", res)
    stop = g1.wait_pushed(lambda r: r.get("type") == "PERIODIC_STOP" and r.get("monitorId") == mon, 10)
    check("monitor end: at endAt the gateway gets PERIODIC_STOP",
          stop and time.time() * 1000 >= end_ms - 50, (stop, g1.pushed()))
    st, m = app.monitor(mon)
    check("monitor end: listed STOPPING until the gateway acks", m and m.get("status") == "STOPPING", (st, m))
    res = g1.ack(g1.send("ack/monitor", "GW_MONITOR_ACK", {"monitorId": mon, "action": "STOP", "result": "0"}))
    st, m = app.wait_monitor(mon, "STOPPED")
    check("monitor end: then STOPPED", m and m.get("status") == "STOPPED", (st, m, res))
    res = g1.ack(g1.send("data/periodic", "GW_PERIODIC_DATA", {"monitorId": mon, "values": [late]}))
    check("monitor end: after it, a value after endAt is still refused", code_of({"result": res}) == "E1001", res)
    st, v = app.latest("P001")
    check("monitor end: nothing after endAt was stored", st == 200 and v == 3333.5, (st, v))
    out = subprocess.run([BIN, "replay", D, "--kind", "monitor"], capture_output=True, text=True).stdout
    evs = [json.loads(l) for l in out.splitlines() if l.strip()]
    mine = [e for e in evs if (e.get("monitor") or {}).get("monitor_id") == mon]
    check("monitor end: the log holds the stop by the system (MS_STOPPING, actor system)",
          any(e.get("actor_kind") == "ACTOR_SYSTEM" and e["monitor"].get("state") == "MS_STOPPING" for e in mine),
          [(e.get("actor"), e.get("actor_kind"), e["monitor"].get("state")) for e in mine])


# ---- main -------------------------------------------------------------------
# (guarded: test_gw_answers.py imports this file for its App and Gateway)

if __name__ == "__main__":
    t_start = time.monotonic()
    try:
        subprocess.run([BIN, "init", "--demo", D], check=True, capture_output=True)
        sheet = os.path.join(T, "other-sheet.csv")
        with open(sheet, "w") as f:
            f.write(OTHER_SHEET)
        r = subprocess.run([BIN, "sheet", "import", sheet, D], capture_output=True, text=True)
        check("a second operator's sheet is imported", r.returncode == 0, r.stderr)
        APP_SIGNER = srtest.Signer("APP001", 0x1A)  # its data-protection certificate (case_control)
        with open(os.path.join(T, "app001.pem"), "w") as f:
            f.write(APP_SIGNER.pem)
        r = subprocess.run([BIN, "cert", "import", D, "--operator", "demo", "--app", "APP001", "--pem",
                            os.path.join(T, "app001.pem")], capture_output=True, text=True)
        check("APP001's certificate is registered", r.returncode == 0, r.stderr)
        start_server()
    except Exception:
        check("set-up: data directory, second operator, server", False, traceback.format_exc())
    try:
        if server is not None:
            run_case("sessions", case_sessions)
            run_case("gateways", case_connect_gateways)
        if server is not None and g1 and g2:
            run_case("immediate", case_immediate)
            run_case("timeout", case_timeout)
            run_case("async", case_async)
            run_case("gateway failure", case_gateway_failure)
            run_case("unknown request", case_unknown_request)
            run_case("control", case_control)
            run_case("certificates", case_certificates)
            run_case("offline", case_offline)
            run_case("fetch", case_fetch)
            run_case("HTTP long-poll", case_http_longpoll)
            run_case("authorization", case_authorization)
            run_case("monitors", case_monitors)
            run_case("monitor end", case_monitor_end)
    finally:
        for g in GATEWAYS:
            try:
                g.c.disconnect()
                g.c.loop_stop()
            except Exception:
                pass
        if server is not None:
            alive = server.poll() is None
            rc = stop_server()
            check("SIGTERM stops the server cleanly (exit 0)", alive and rc == 0, rc)
        if check.fails and os.path.exists(LOG):
            print("---- server log (last 80 lines)")
            print("".join(open(LOG, errors="replace").readlines()[-80:]))
        shutil.rmtree(T, ignore_errors=True)

    print("%.1f s" % (time.monotonic() - t_start))
    sys.exit(check.summary())
