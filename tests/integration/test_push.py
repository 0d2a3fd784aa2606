#!/usr/bin/python3
"""tests/integration/test_push.py -- push to apps (R-AP-17, docs/requests.md
"Push to apps") end to end through the real `suiro serve`.

A receiver (http.server in a thread, on a loopback port) stands for the app's
push URL; it is started before the set-up sheet that registers the URL is
imported. A test gateway (python3-paho-mqtt) acknowledges the monitor and
publishes GW_PERIODIC_DATA; the app (http.client) starts the monitor and an
async request. Checked:
  - every value reaches the receiver exactly once and in order (raw
    deliveries are counted per X-Suiro-Delivery id: a duplicate is a failure,
    not something to de-duplicate);
  - every request is signed (X-Suiro-Signature, ES256 raw r||s, verified with
    the platform certificate; X-Suiro-Signature-Alg (ext) names ES256); a
    tampered body fails verification;
  - a data directory made by `suiro init --signature EdDSA`: pushes are
    signed Ed25519 (X-Suiro-Signature: EdDSA;keyId=platform;sig=..., and
    X-Suiro-Signature-Alg: EdDSA), verified by the receiver with the
    platform certificate's Ed25519 key;
  - while the receiver answers 503 the same message is retried (same delivery
    id, growing back-off), and afterwards everything arrives once, in order;
  - an async request's outcome is POSTed to /requests/{id} with what
    GET /api/v1/requests/{id} answers; a synchronous one is not pushed;
  - the bound ([push] max_queue = 5, second server): with the receiver down,
    only the newest messages survive (a message in flight is never dropped),
    the drops are counted, and one alarm event is in the log.

Every process is stopped by its PID; every wait is on a condition with a
timeout. usage: test_push.py SUIRO_BIN"""
import base64
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
import urllib.request

import paho.mqtt.client as mqtt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srtest import Checks, paho_client  # noqa: E402
import srtest  # noqa: E402
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-push-")
check = Checks()
WAIT = 10.0
SERVERS = []     # every Server made, stopped at the end
GATEWAYS = []
RECEIVERS = []


def run_case(name, fn):
    print("--", name, flush=True)
    try:
        fn()
    except Exception:
        check(name + " (ran to the end)", False, traceback.format_exc())


_ts_lock = threading.Lock()
_ts_last = 0


def ts():
    """Now in RFC 3339 UTC with milliseconds, strictly increasing."""
    global _ts_last
    with _ts_lock:
        ms = max(int(time.time() * 1000), _ts_last + 1)
        _ts_last = ms
    t = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


_mid = itertools.count(1)


def new_mid(prefix="t"):
    return "%s-%d" % (prefix, next(_mid))


def wait_until(pred, timeout=WAIT, every=0.02):
    end = time.monotonic() + timeout
    while True:
        r = pred()
        if r or time.monotonic() >= end:
            return r
        time.sleep(every)


# ---- the receiver (the app's push URL) --------------------------------------

class Receiver(srtest.PushReceiver):
    """srtest.PushReceiver, stopped at the end of the test."""

    def __init__(self, listening=True, port=0):
        super().__init__(listening, port)
        RECEIVERS.append(self)


def values_of(reqs):
    out = []
    for r in reqs:
        out.extend(v.get("value") for v in json.loads(r["body"]).get("values") or [])
    return out


# ---- signatures -------------------------------------------------------------

SIG = re.compile(r"^ES256;keyId=platform;sig=([A-Za-z0-9_-]{86})$")


def verify(pub, body, header):
    """True if header is a valid X-Suiro-Signature of body."""
    m = SIG.match(header or "")
    if not m:
        return False
    raw = base64.urlsafe_b64decode(m.group(1) + "==")
    if len(raw) != 64:
        return False
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        pub.verify(der, body, ec.ECDSA(hashes.SHA256()))
        return True
    except InvalidSignature:
        return False


def platform_key(d):
    with open(os.path.join(d, "platform-cert.pem"), "rb") as f:
        return x509.load_pem_x509_certificate(f.read()).public_key()


# ---- server, app, gateway ---------------------------------------------------

class Server:
    def __init__(self, bin_, data, config=None, name="server"):
        self.log = os.path.join(T, name + ".log")
        SERVERS.append(self)
        self.p = None
        self.p, self.ports = srtest.start_server(bin_, data, self.log,
                                                 extra=["--config", config] if config else [])
        if "mqtt" not in self.ports:
            raise RuntimeError("server did not print its listening lines: %s" % self.logtext())

    def stop(self):
        """SIGTERM by PID; the exit code (-9 if it had to be killed)."""
        return srtest.stop_server(self.p, 30)

    def logtext(self):
        with open(self.log, errors="replace") as f:
            return f.read()


class App:
    def __init__(self, srv, app_id="APP001", op="demo", secret="demo-app001-secret"):
        self.srv = srv
        self.token = None
        st, js = self.call("POST", "/api/v1/sessions", {"appId": app_id, "operatorId": op, "secret": secret})
        if st == 201:
            self.token = js["token"]

    def call(self, method, path, body=None, timeout=20):
        st, _, raw, _ = srtest.http_once(self.srv.ports["http"], method, path,
                                         None if body is None else json.dumps(body), self.token,
                                         None if body is None else {"Content-Type": "application/json"}, timeout=timeout)
        try:
            return st, json.loads(raw) if raw else None
        except ValueError:
            return st, None


class Gateway:
    """demo/GW001 on MQTT: answers IMMEDIATE requests with self.values and
    acknowledges PERIODIC_START; publishes periodic data (QoS 1)."""

    def __init__(self, srv, gw="GW001", secret="demo-gw001-secret"):
        self.gw = gw
        self.root = "wip/v1/demo/gw/" + gw
        self.cv = threading.Condition()
        self.msgs = []
        self.values = {"P001": 123.5}
        self.connected = None
        self.subscribed = False
        GATEWAYS.append(self)
        self.c = paho_client(gw, mqtt.MQTTv311)
        self.c.username_pw_set("demo/" + gw, secret)
        self.c.on_connect = self._on_connect
        self.c.on_subscribe = self._on_subscribe
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", srv.ports["mqtt"], keepalive=30)
        self.c.loop_start()
        self.wait_for(lambda g: g.connected is not None)
        self.c.subscribe([(self.root + "/requests", 0), (self.root + "/res/#", 0)])
        self.wait_for(lambda g: g.subscribed)

    def _on_connect(self, c, u, flags, rc):
        with self.cv:
            self.connected = rc
            self.cv.notify_all()

    def _on_subscribe(self, c, u, mid, granted):
        with self.cv:
            self.subscribed = True
            self.cv.notify_all()

    def _on_message(self, c, u, msg):
        suffix = msg.topic[len(self.root) + 1:]
        try:
            m = json.loads(msg.payload)
        except ValueError:
            return
        with self.cv:
            self.msgs.append((suffix, m))
            self.cv.notify_all()
        if suffix != "requests":
            return
        for req in (m.get("body") or {}).get("requests") or []:
            if req.get("type") == "PERIODIC_START":
                self.send("ack/monitor", "GW_MONITOR_ACK",
                          {"monitorId": req["monitorId"], "action": "START", "result": "0"})
            elif req.get("type") == "IMMEDIATE":
                self.send("data/immediate", "GW_IMMEDIATE_RESULT",
                          {"requestId": req["requestId"], "result": "0",
                           "values": [{"dataId": d, "timestamp": ts(), "value": self.values.get(d)}
                                      for d in req.get("dataIds") or []]})

    def wait_for(self, pred, timeout=WAIT):
        with self.cv:
            return self.cv.wait_for(lambda: pred(self), timeout)

    def send(self, suffix, mtype, body):
        mid = new_mid(self.gw)
        env = {"header": {"messageType": mtype, "messageId": mid, "timestamp": ts()}, "body": body}
        self.c.publish(self.root + "/" + suffix, json.dumps(env), qos=1)
        return mid

    def acks(self):
        """correlationId -> result code of every GW_ACK seen."""
        out = {}
        with self.cv:
            for s, m in self.msgs:
                if s == "res/ack":
                    r = (m.get("body") or {}).get("result")
                    out[(m.get("header") or {}).get("correlationId")] = r.get("code") if isinstance(r, dict) else r
        return out

    def publish_values(self, mon, values, timeout=30):
        """GW_PERIODIC_DATA for each value, one message each; True when every
        one was acknowledged with code 0 (stored, and so queued for push)."""
        mids = [self.send("data/periodic", "GW_PERIODIC_DATA",
                          {"monitorId": mon, "values": [{"dataId": "P001", "timestamp": ts(), "value": v}]})
                for v in values]
        ok = self.wait_for(lambda g: all(m in g.acks() for m in mids), timeout)
        acks = self.acks()
        return ok and all(str(acks[m]) == "0" for m in mids)

    def started(self, mon):
        with self.cv:
            return any(s == "requests" and any(r.get("monitorId") == mon and r.get("type") == "PERIODIC_START"
                                               for r in (m.get("body") or {}).get("requests") or [])
                       for s, m in self.msgs)

    def close(self):
        try:
            self.c.disconnect()
        finally:
            self.c.loop_stop()


def sheet_with_push(url):
    """A partial sheet: re-declares APP001 with its push URL (an empty secret
    keeps the stored one)."""
    return ("#suiro-setup-sheet v1\n[operator]\nid,name\ndemo,Demo Water Utility (デモ水道局)\n\n"
            "[apps]\nid,name,secret,push_url\nAPP001,Demo monitoring app,,%s\n" % url)


def make_data(name, url, init_args=()):
    d = os.path.join(T, name)
    subprocess.run([BIN, "init", "--demo"] + list(init_args) + [d], check=True, capture_output=True)
    sheet = os.path.join(T, name + "-sheet.csv")
    with open(sheet, "w") as f:
        f.write(sheet_with_push(url))
    r = subprocess.run([BIN, "sheet", "import", sheet, d], capture_output=True, text=True)
    check("%s: the sheet registering APP001's push URL is imported" % name, r.returncode == 0, r.stderr)
    return d


def start_monitor(app, gw):
    st, js = app.call("POST", "/api/v1/monitors", {"dataIds": ["P001"], "intervalMs": 200})
    mon = (js or {}).get("monitorId")
    check("monitor started (201 {monitorId})", st == 201 and mon, (st, js))
    check("the gateway gets PERIODIC_START and acks it", gw.wait_for(lambda g: g.started(mon)))
    return mon


def asan_clean(srv):
    t = srv.logtext()
    return "AddressSanitizer" not in t and "LeakSanitizer" not in t and "runtime error" not in t


# ---- case 1: delivery, order, signature, retries, async outcome -------------

def case_main():
    rcv = Receiver()
    d = make_data("data", "http://127.0.0.1:%d/hook/" % rcv.port)
    pub = platform_key(d)
    conf = os.path.join(T, "main.ini")
    with open(conf, "w") as f:
        # debug: the log shows each finished transfer ("push attempt done")
        f.write("[engine]\ndata_dir = %s\n\n[push]\nmax_backoff_ms = 2000\n\n[log]\nlevel = debug\n" % d)
    srv = Server(BIN, d, conf, "main")
    gw = Gateway(srv)
    app = App(srv)
    check("the app logs in", app.token)
    mon = start_monitor(app, gw)
    prefix = "/hook/monitors/%s" % mon

    # 30 values, the receiver up
    N = 30
    check("30 GW_PERIODIC_DATA stored (GW_ACK 0 each)", gw.publish_values(mon, list(range(N))))
    rcv.wait_for(lambda r: len(values_of(r.accepted(prefix))) >= N)
    got = rcv.accepted(prefix)
    check("the receiver got POST {url}/monitors/{monitorId} for all 30 values, once each, in order",
          values_of(got) == list(range(N)), values_of(got))
    ids = [r["headers"].get("x-suiro-delivery") for r in rcv.all()]
    check("every delivery id arrived exactly once (no duplicates)", len(ids) == len(set(ids)) and None not in ids, ids)
    first = json.loads(got[0]["body"]) if got else {}
    v0 = (first.get("values") or [{}])[0]
    check("body {monitorId, values:[{dataId, timestamp, value, quality}]}",
          first.get("monitorId") == mon and v0.get("dataId") == "P001" and v0.get("quality") == "GOOD"
          and isinstance(v0.get("timestamp"), str) and v0.get("timestamp", "").endswith("Z"), first)
    check("Content-Type: application/json",
          all(r["headers"].get("content-type") == "application/json" for r in got), got[:1])
    check("the body is compact JSON (the signed bytes are what was sent)",
          all(b" " not in r["body"] for r in got), got[:1])
    check("every request's X-Suiro-Signature verifies with the platform certificate",
          got and all(verify(pub, r["body"], r["headers"].get("x-suiro-signature")) for r in got),
          [r["headers"].get("x-suiro-signature") for r in got[:2]])
    tampered = got[0]["body"].replace(b'"value":0', b'"value":1') if got else b""
    check("a tampered body fails verification",
          got and tampered != got[0]["body"] and not verify(pub, tampered, got[0]["headers"].get("x-suiro-signature")))
    check("a signature of another body fails verification",
          len(got) > 1 and not verify(pub, got[1]["body"], got[0]["headers"].get("x-suiro-signature")))
    check("X-Suiro-Signature-Alg (ext) names ES256 on every request",
          got and all(r["headers"].get("x-suiro-signature-alg") == "ES256" for r in got),
          [r["headers"].get("x-suiro-signature-alg") for r in got[:2]])

    # the receiver answers 503: the head is retried with back-off, then all arrive
    rcv.mode = "fail"
    check("10 more values stored while the receiver answers 503", gw.publish_values(mon, list(range(N, N + 10))))
    rcv.wait_for(lambda r: len(r.failed(prefix)) >= 3, 15)
    fl = rcv.failed(prefix)
    head = fl[0]["headers"].get("x-suiro-delivery") if fl else None
    same = [r for r in fl if r["headers"].get("x-suiro-delivery") == head]
    check("the same message is retried (3 attempts, same X-Suiro-Delivery, same body)",
          len(same) >= 3 and len({r["body"] for r in same}) == 1, [(r["path"], r["headers"].get("x-suiro-delivery")) for r in fl])
    gaps = [same[i + 1]["t"] - same[i]["t"] for i in range(len(same) - 1)]
    check("back-off grows: ~0.5 s then ~1 s between attempts", len(gaps) >= 2 and gaps[0] >= 0.4 and gaps[1] >= 0.9,
          gaps)
    check("retries are signed too", all(verify(pub, r["body"], r["headers"].get("x-suiro-signature")) for r in fl))
    rcv.mode = "ok"
    rcv.wait_for(lambda r: len(values_of(r.accepted(prefix))) >= N + 10, 20)
    got = rcv.accepted(prefix)
    check("after the outage all 40 values arrived once each, in order",
          values_of(got) == list(range(N + 10)), values_of(got))
    acc_ids = [r["headers"].get("x-suiro-delivery") for r in got]
    check("no delivery id was accepted twice", len(acc_ids) == len(set(acc_ids)), acc_ids)
    check("the failed attempts were of messages later accepted (same ids)",
          {r["headers"].get("x-suiro-delivery") for r in fl} <= set(acc_ids))

    # async outcome (and a synchronous request first, which is not pushed)
    st, js = app.call("POST", "/api/v1/current-values", {"dataIds": ["P001"], "timeoutMs": 5000})
    sync_rid = (js or {}).get("requestId")
    check("a synchronous current-values request succeeds (200)", st == 200 and sync_rid, (st, js))
    st, js = app.call("POST", "/api/v1/current-values?async=true", {"dataIds": ["P001"], "timeoutMs": 5000})
    rid = (js or {}).get("requestId")
    check("an async current-values request gets 202 {requestId}", st == 202 and rid, (st, js))
    rcv.wait_for(lambda r: r.accepted("/hook/requests/%s" % rid))
    out = rcv.accepted("/hook/requests/%s" % rid)
    body = json.loads(out[0]["body"]) if out else {}
    check("the receiver got POST {url}/requests/{requestId} with status SUCCEEDED and the value",
          len(out) == 1 and body.get("requestId") == rid and body.get("status") == "SUCCEEDED"
          and [v.get("value") for v in body.get("values") or []] == [123.5], out)
    check("... signed", out and verify(pub, out[0]["body"], out[0]["headers"].get("x-suiro-signature")))
    st, js = app.call("GET", "/api/v1/requests/" + rid)
    check("... with the body GET /api/v1/requests/{id} answers", st == 200 and js == body, (st, js, body))
    check("the synchronous request was not pushed (FIFO: it would have come first)",
          not [r for r in rcv.all() if sync_rid and sync_rid in r["path"]])

    # the server counts a delivery when its transfer is done, a moment after
    # the receiver answered: wait for the 41st before stopping it
    done = re.compile(r'msg="push attempt done" op=demo app=APP001 ok=1 ')
    check("the server finished the 41 transfers the receiver accepted",
          srtest.wait_until(lambda: len(done.findall(srv.logtext())) >= 41, 20),
          len(done.findall(srv.logtext())))
    gw.close()
    rc = srv.stop()
    check("SIGTERM: the server exits 0", rc == 0, rc)
    log = srv.logtext()
    check("its log says what push did for APP001 (push stopped ... delivered=41: 40 values + 1 outcome)",
          re.search(r'msg="push stopped" op=demo app=APP001 delivered=41 ', log), log[-3000:])
    check("no sanitizer report in the log", asan_clean(srv), log[-3000:])
    rcv.stop()


# ---- case 2: the bound ------------------------------------------------------

def case_bound():
    rcv = Receiver(listening=False)        # port bound, not listening: connections refused
    d = make_data("bound", "http://127.0.0.1:%d" % rcv.port)
    conf = os.path.join(T, "bound.ini")
    with open(conf, "w") as f:
        f.write("[engine]\ndata_dir = %s\n\n[push]\nmax_queue = 5\nmax_backoff_ms = 500\n\n[metrics]\nlisten = 127.0.0.1:0\n"
                % d)
    srv = Server(BIN, d, conf, "bound")
    gw = Gateway(srv)
    app = App(srv)
    mon = start_monitor(app, gw)
    prefix = "/monitors/%s" % mon

    # (a) receiver down: 20 values, 5 kept
    check("bound: 20 values stored while the receiver is down", gw.publish_values(mon, list(range(20))))
    check("bound: the server logs the drop (warn)",
          wait_until(lambda: "push queue over its bound: oldest dropped" in srv.logtext()), srv.logtext()[-2000:])
    rcv.up()
    rcv.wait_for(lambda r: len(r.accepted(prefix)) >= 5, 15)
    got = values_of(rcv.accepted(prefix))
    # Exact expectation: the newest five (15..19). The one exception is a
    # message in flight, which is never dropped: had an older one been in
    # flight when the last values came, it is delivered in place of 15.
    check("bound: the receiver gets exactly the 5 newest values, in order (15..19; an older message that was "
          "in flight may stand in for 15)",
          len(got) == 5 and got[1:] == [16, 17, 18, 19] and got[0] <= 15, got)
    print("   (got %r)" % got, flush=True)
    check("bound: a marker sent afterwards is the next delivery (nothing else was queued)",
          gw.publish_values(mon, [100]) and rcv.wait_for(lambda r: len(r.accepted(prefix)) >= 6)
          and values_of(rcv.accepted(prefix)) == got + [100], values_of(rcv.accepted(prefix)))

    # (b) a slow receiver: the message in flight is kept, the 4 newest behind it
    rcv.mode = "hold"
    rcv.released.clear()
    n_arr = len(rcv.arrived)
    check("bound: value 21 stored", gw.publish_values(mon, [21]))
    check("bound: its POST is in flight (the receiver holds it)", rcv.wait_for(lambda r: len(r.arrived) > n_arr))
    check("bound: values 22..40 stored meanwhile", gw.publish_values(mon, list(range(22, 41))))
    rcv.mode = "ok"
    rcv.release()
    rcv.wait_for(lambda r: len(r.accepted(prefix)) >= 11, 15)
    check("bound: the receiver then gets 21 (in flight, kept) and the 4 newest, 37..40",
          values_of(rcv.accepted(prefix))[6:] == [21, 37, 38, 39, 40], values_of(rcv.accepted(prefix)))
    check("bound: a second marker is the next delivery",
          gw.publish_values(mon, [101]) and rcv.wait_for(lambda r: len(r.accepted(prefix)) >= 12)
          and values_of(rcv.accepted(prefix))[11:] == [101], values_of(rcv.accepted(prefix)))
    # the metrics (docs/monitoring.md): 15 + 15 dropped by the bound, nothing waiting now
    wait_until(lambda: "metrics" in srv.ports)
    m = {}

    def scrape():
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % srv.ports["metrics"], timeout=10) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("suiro_push_"):
                    k, v = line.rsplit(" ", 1)
                    m[k] = float(v)
        return m.get('suiro_push_queued{app="demo/APP001"}') == 0
    check("bound: /metrics shows the app's queue empty (suiro_push_queued 0) once the marker is delivered",
          wait_until(scrape), m)
    check("bound: ... and suiro_push_dropped_total{app=demo/APP001} = 30 (15 + 15 by the bound)",
          m.get('suiro_push_dropped_total{app="demo/APP001"}') == 30, m)

    # (c) stopping with a request in flight and two behind it: aborted, dropped, exit 0
    rcv.mode = "hold"
    rcv.released.clear()
    n_arr = len(rcv.arrived)
    check("bound: value 102 stored, and its POST held by the receiver",
          gw.publish_values(mon, [102]) and rcv.wait_for(lambda r: len(r.arrived) > n_arr))
    check("bound: values 103, 104 stored behind it", gw.publish_values(mon, [103, 104]))
    gw.close()
    t = time.monotonic()
    rc = srv.stop()
    check("bound: SIGTERM with a push in flight: the server exits 0 at once (the transfer is aborted)",
          rc == 0 and time.monotonic() - t < 5, (rc, time.monotonic() - t))
    rcv.release()
    log = srv.logtext()
    check("bound: push counted 12 delivered and 30 dropped (15 + 15 by the bound), 3 left for the next start",
          re.search(r'msg="push stopped" op=demo app=APP001 delivered=12 retried=\d+ dropped=30 pending_after_restart=3',
                    log), log[-3000:])
    check("bound: the drop warning was logged once (at most once a minute per app)",
          log.count("push queue over its bound") == 1, log.count("push queue over its bound"))
    check("bound: no sanitizer report in the log", asan_clean(srv), log[-3000:])
    r = subprocess.run([BIN, "replay", d, "--kind", "alarm"], capture_output=True, text=True)
    alarms = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
    alarms = [a for a in alarms if a.get("alarm", {}).get("source") == "push"]  # not the rules' (clock, disk: api/alarms.c)
    want = {"level": "AL_MINOR", "state": "raised", "source": "push", "rule": "push-dropped", "subject": "APP001",
            "message": "push queue of app APP001 over 5: oldest dropped"}
    got = dict(alarms[0].get("alarm", {})) if len(alarms) == 1 else {}
    aid = got.pop("alarm_id", "")
    check("bound: `suiro replay --kind alarm` shows one alarm event, rule push-dropped of APP001 (minor, raised, push)"
          " naming the alarm it opened (A and its seq in hex)",
          r.returncode == 0 and len(alarms) == 1 and got == want and aid == "A%016X" % alarms[0]["seq"]
          and alarms[0].get("operator_id") == "demo", (r.returncode, r.stdout, r.stderr))
    rcv.stop()


# ---- case 3: a platform key of another algorithm (EdDSA) -------------------

SIG_ED = re.compile(r"^EdDSA;keyId=platform;sig=([A-Za-z0-9_-]{86})$")


def verify_ed25519(pub, body, header):
    m = SIG_ED.match(header or "")
    if not m:
        return False
    try:
        pub.verify(base64.urlsafe_b64decode(m.group(1) + "=="), body)
        return True
    except InvalidSignature:
        return False


def case_eddsa():
    rcv = Receiver()
    d = make_data("eddsa", "http://127.0.0.1:%d/hook" % rcv.port, ["--signature", "EdDSA"])
    pub = platform_key(d)
    check("suiro init --signature EdDSA made an Ed25519 platform key",
          isinstance(pub, ed25519.Ed25519PublicKey), type(pub))
    conf = os.path.join(T, "eddsa.ini")
    with open(conf, "w") as f:
        f.write("[engine]\ndata_dir = %s\n" % d)
    srv = Server(BIN, d, conf, "eddsa")
    gw = Gateway(srv)
    app = App(srv)
    check("the app logs in", app.token)
    st, js = app.call("POST", "/api/v1/current-values?async=true", {"dataIds": ["P001"], "timeoutMs": 5000})
    rid = (js or {}).get("requestId")
    check("an async current-values request gets 202 {requestId}", st == 202 and rid, (st, js))
    rcv.wait_for(lambda r: r.accepted("/hook/requests/%s" % rid))
    out = rcv.accepted("/hook/requests/%s" % rid)
    h = out[0]["headers"] if out else {}
    check("the outcome is pushed with X-Suiro-Signature: EdDSA;keyId=platform;sig=<86 base64url>",
          out and SIG_ED.match(h.get("x-suiro-signature") or ""), h)
    check("X-Suiro-Signature-Alg: EdDSA", h.get("x-suiro-signature-alg") == "EdDSA", h)
    check("the receiver verifies it with the platform certificate's Ed25519 key",
          out and verify_ed25519(pub, out[0]["body"], h.get("x-suiro-signature")))
    tampered = out[0]["body"].replace(b"SUCCEEDED", b"FAILED") if out else b""
    check("a tampered body fails", out and tampered != out[0]["body"]
          and not verify_ed25519(pub, tampered, h.get("x-suiro-signature")))
    gw.close()
    rc = srv.stop()
    check("SIGTERM: the server exits 0", rc == 0, rc)
    check("no sanitizer report in the log", asan_clean(srv), srv.logtext()[-3000:])
    rcv.stop()


# ---- main -------------------------------------------------------------------

def run_all(cases):
    """Run (name, fn) cases, stop every gateway, server and receiver they
    started, keep the logs if a check failed; exits with the summary (this
    file's main and test_push_restart.py's)."""
    t0 = time.monotonic()
    try:
        for name, fn in cases:
            run_case(name, fn)
    finally:
        for g in GATEWAYS:
            try:
                g.close()
            except Exception:
                pass
        for s in SERVERS:
            s.stop()
        for r in RECEIVERS:
            try:
                r.stop()
            except Exception:
                pass
    print("%.1f s" % (time.monotonic() - t0), flush=True)
    if check.fails == 0:
        shutil.rmtree(T, ignore_errors=True)
    else:
        print("logs kept in", T, flush=True)
    sys.exit(check.summary())


def main():
    run_all([("delivery, signature, retries, async outcome", case_main), ("bound", case_bound),
             ("a platform key of EdDSA", case_eddsa)])


if __name__ == "__main__":   # test_push_restart.py imports the helpers above
    main()
