#!/usr/bin/python3
"""tests/integration/test_gw_durable.py -- nothing is acknowledged unless it
is durable (issue #11 items 2 and 10), through the real `suiro serve`, for
MQTT 3.1.1, MQTT 5.0 and the HTTP binding.

A positive acknowledgement is a PUBACK (3.1.1), a PUBACK with reason 0 (5.0)
or an HTTP 200. After each phase the server is killed (-9) and every
message that got a positive acknowledgement must be in the log
(`suiro replay`), stored once; a message that was not stored must have got
no positive acknowledgement (3.1.1: the connection closes without a
PUBACK; 5.0: PUBACK 0x97 or 0x80; HTTP: 429 or 503 with Retry-After).

 1. saturated writer: a tiny queue ([engine] queue_max = 16, 4 per
    operator) and a slow writer (SUIRO_TEST_WRITER_DELAY_MS) while each
    binding sends measurements and periodic monitor data (the broker path,
    where a full queue used to come back as a PUBACKed E9002): MQTT holds
    what meets the full queue (back-pressure) and acknowledges it once
    durable, HTTP answers 429;
 2. a full disk: the data directory on a small tmpfs (mounted here; skipped
    with a message where mount is not permitted) filled up while the
    gateways send; the write failure is logged; once space returns the
    server resumes by itself, a paho 3.1.1 client's held messages go
    through on its own resends, and every binding stores again;
 3. a restart with the disk still full: the server starts (serving reads,
    AP-IF latest value), refuses writes without a positive answer, and says
    so in its log; after space returns and a restart it stores again A
    gateway's MQTT login waits for its SessionEvent to be durable (issue
    #18, fail closed): on the read-only restart it is refused with CONNACK
    0x88 (3.1.1: rc 3) and no session, and a gateway's HTTP login with 503
    E9001 and no token; after space returns logins work.

MQTT is spoken by a small raw client (it sees each PUBACK's reason code and
the connection's end, which paho 1.6 does not report) and, for the resend
behaviour of a real gateway, by python3-paho-mqtt 3.1.1. SR_SOAK multiplies
the message counts. usage: test_gw_durable.py SUIRO_BIN"""
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srtest  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402

BIN = sys.argv[1]
SOAK = max(1, int(os.environ.get("SR_SOAK", "1") or "1"))
T = tempfile.mkdtemp(prefix="suiro-durable-")
check = srtest.Checks()
procs = []
SECRETS = {"GW001": "demo-gw001-secret", "GW002": "demo-gw002-secret"}
POINT = {"GW001": ("P001", 5000), "GW002": ("P006", 12)}
seq_ts = [0]


def ts():
    seq_ts[0] += 1
    n = seq_ts[0]
    return "2026-11-22T%02d:%02d:%02d.%03dZ" % (n // 3600000 % 24, n // 60000 % 60, n // 1000 % 60, n % 1000)


def envelope(mtype, mid, body):
    return json.dumps({"header": {"messageType": mtype, "messageId": mid, "timestamp": "2026-11-22T00:00:00.000Z"},
                       "body": body}).encode()


def meas(gw, mid):
    p, mx = POINT[gw]
    return envelope("GW_MEASUREMENTS", mid, {"values": [{"dataId": p, "timestamp": ts(), "value": (len(mid) * 7) % mx}]})


def big(gw, mid, n=3000):
    """Many values that do not compress much: more than the slack of a page."""
    p, mx = POINT[gw]
    vals = [{"dataId": p, "timestamp": ts(), "value": ((i * 7919 + len(mid) * 104729) % 1000003) / 1000003.0 * mx}
            for i in range(n)]
    return envelope("GW_MEASUREMENTS", mid, {"values": vals})


def periodic(gw, mid, mon):
    p, mx = POINT[gw]
    return envelope("GW_PERIODIC_DATA", mid, {"monitorId": mon, "values": [{"dataId": p, "timestamp": ts(),
                                                                          "value": (len(mid) * 3) % mx}]})


def wait_for(cond, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


# ---- a raw MQTT client (3.1.1 and 5.0) --------------------------------------

varint = srtest.mqtt_varint
mstr = srtest.mqtt_str


class Raw:
    """One MQTT connection; publish() sends QoS 1, pump() reads PUBACKs
    (pid -> reason) until the server closes the connection."""

    def __init__(self, port, gw, v5):
        self.gw, self.v5 = gw, v5
        self.root = "wip/v1/demo/gw/%s" % gw
        self.acks = {}
        self.closed = False
        self.buf = b""
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        vh = mstr("MQTT") + bytes([5 if v5 else 4, 0xC2]) + struct.pack(">H", 60) + (b"\x00" if v5 else b"")
        pl = mstr(gw) + mstr("demo/" + gw) + mstr(SECRETS[gw])
        self.s.sendall(bytes([0x10]) + varint(len(vh) + len(pl)) + vh + pl)
        t, body = self._packet(10)
        self.connack = body[1] if t == 2 else None

    def _packet(self, timeout):
        self.s.settimeout(timeout)
        while True:
            if len(self.buf) >= 2:
                n, mul, i = 0, 1, 1
                while i < len(self.buf):
                    n += (self.buf[i] & 127) * mul
                    mul *= 128
                    i += 1
                    if not self.buf[i - 1] & 128:
                        break
                else:
                    i = None
                if i is not None and len(self.buf) >= i + n:
                    t, body = self.buf[0] >> 4, self.buf[i:i + n]
                    self.buf = self.buf[i + n:]
                    return t, body
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                return None, None
            except OSError:
                d = b""
            if not d:
                self.closed = True
                return None, None
            self.buf += d

    def publish(self, suffix, payload, pid):
        vh = mstr(self.root + "/" + suffix) + struct.pack(">H", pid) + (b"\x00" if self.v5 else b"")
        try:
            self.s.sendall(bytes([0x32]) + varint(len(vh) + len(payload)) + vh + payload)
        except OSError:
            self.closed = True

    def pump(self, want, timeout):
        """Read until `want` PUBACKs arrived, the connection closed, or timeout."""
        end = time.time() + timeout
        while len(self.acks) < want and not self.closed and time.time() < end:
            t, body = self._packet(max(0.05, end - time.time()))
            if t == 4:
                pid = struct.unpack(">H", body[:2])[0]
                self.acks[pid] = body[2] if self.v5 and len(body) > 2 else 0
            elif t == 14:
                self.closed = True

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def http_post(port, path, body, token):
    """(status, Retry-After, body), or (None, None, why) when the connection failed."""
    try:
        st, r, data, _ = srtest.http_once(port, "POST", path, body, token, {"Content-Type": "application/json"})
        return st, r.getheader("Retry-After"), data
    except (OSError, http.client.HTTPException) as e:
        return None, None, str(e).encode()


def gw_token(port, gw):
    st, js = srtest.Api(port).call("POST", "/gw/v1/sessions", {"operatorId": "demo", "gatewayId": gw,
                                                               "secret": SECRETS[gw]})
    return js["token"] if st == 201 else None


def stored_ids(data):
    out = subprocess.run([BIN, "replay", data, "--kind", "measurements"], capture_output=True, text=True).stdout
    ids = {}
    for line in out.splitlines():
        if line.strip():
            m = json.loads(line).get("message_id", "")
            ids[m] = ids.get(m, 0) + 1
    return ids


def start(data, log, cfg=None, env=None):
    p, ports = srtest.start_server(BIN, data, log, extra=["--config", cfg] if cfg else [],
                                   env=dict(os.environ, **(env or {})))
    procs.append(p)
    return p, ports


def kill(p):
    if p.poll() is None:
        p.send_signal(signal.SIGKILL)
        p.wait()


def term(p, log, name):
    """A clean stop: exit status 0 and no sanitizer report (ASan builds)."""
    at = os.path.getsize(log)
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(60)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = p.wait()
    txt = open(log, errors="replace").read()[at:]
    check(name + ": a clean stop (exit 0, no sanitizer report)",
          rc == 0 and "Sanitizer" not in txt and "runtime error" not in txt, (rc, txt[-800:]))


def check_acked_stored(name, data, acked):
    ids = stored_ids(data)
    missing = sorted(m for m in acked if ids.get(m, 0) < 1)
    twice = sorted(m for m in acked if ids.get(m, 0) > 1)
    check(name + ": every positively acknowledged message is stored, once (%d acknowledged)" % len(acked),
          not missing and not twice, "missing %s twice %s" % (missing[:5], twice[:5]))
    return ids


def new_monitor(port, gws_points):
    app = srtest.Api(port)
    if app.login("APP001", "demo", "demo-app001-secret") != 201:
        return None
    st, js = app.call("POST", "/api/v1/monitors", {"dataIds": gws_points, "intervalMs": 60000})
    return js.get("monitorId") if st == 201 else None


class Paho311:
    """A real 3.1.1 gateway: publishes QoS 1, reconnects and resends by
    itself (paho 1.6 resends unacknowledged QoS 1 messages on reconnect)."""

    def __init__(self, port, gw):
        self.acked = set()
        self.mids = {}
        self.disconnects = 0
        self.lock = threading.Lock()
        self.c = srtest.paho_client(gw, mqtt.MQTTv311, clean_session=False)
        self.c.username_pw_set("demo/" + gw, SECRETS[gw])
        self.c.reconnect_delay_set(0.05, 0.2)
        self.c.on_publish = self._pub
        self.c.on_disconnect = self._disc
        self.root = "wip/v1/demo/gw/%s" % gw
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()

    def _pub(self, c, u, mid):
        with self.lock:
            if mid in self.mids:
                self.acked.add(self.mids[mid])

    def _disc(self, c, u, rc):
        self.disconnects += 1

    def send(self, suffix, payload, msgid):
        info = self.c.publish(self.root + "/" + suffix, payload, qos=1)
        with self.lock:
            self.mids[info.mid] = msgid

    def stop(self):
        self.c.loop_stop()
        self.c.disconnect()


# ---- 1. a saturated writer ----------------------------------------------------

def case_saturated():
    data = os.path.join(T, "sat")
    subprocess.run([BIN, "init", "--demo", data], check=True, capture_output=True)
    cfg = os.path.join(T, "sat.ini")
    open(cfg, "w").write("[engine]\nqueue_max = 16\n[mqtt]\ninflight_max = 64\n")
    log = os.path.join(T, "server.log")
    p, ports = start(data, log, cfg, {"SUIRO_TEST_WRITER_DELAY_MS": "40"})
    mon = new_monitor(ports["http"], ["P001", "P006"])
    check("saturated: a monitor over both gateways", mon is not None)
    n = 30 * SOAK
    acked = set()
    refused = {"3.1.1": 0, "5.0": 0, "http": 0}
    tok = gw_token(ports["http"], "GW001")
    clients = {"3.1.1": Raw(ports["mqtt"], "GW001", False), "5.0": Raw(ports["mqtt"], "GW002", True)}
    sent = {k: {} for k in clients}
    todo = {}
    for k, c in clients.items():
        todo[k] = []
        for i in range(1, n + 1):
            mid = "sat-%s-p%d" % (k, i)
            sent[k][i] = mid
            todo[k].append((i, "data/periodic", periodic(c.gw, mid, mon)))
        for i in range(n + 1, 2 * n + 1):
            mid = "sat-%s-m%d" % (k, i)
            sent[k][i] = mid
            todo[k].append((i, "data/measurements", meas(c.gw, mid)))

    def mqtt_senders():
        # a window below the server's receive maximum (inflight_max = 64)
        pos = {k: 0 for k in clients}
        end = time.time() + 60 * SOAK
        while time.time() < end and any(pos[k] < len(todo[k]) or len(clients[k].acks) < pos[k] for k in clients):
            for k, c in clients.items():
                while pos[k] < len(todo[k]) and pos[k] - len(c.acks) < 48 and not c.closed:
                    pid, suffix, body = todo[k][pos[k]]
                    c.publish(suffix, body, pid)
                    pos[k] += 1
                c.pump(len(c.acks) + 1, 0.05)
                if c.closed:
                    pos[k] = len(todo[k])

    http_res = []

    def poster(t):
        for i in range(n // 4 + 1):
            mid = "sat-http-%d-%d" % (t, i)
            body = periodic("GW001", mid, mon) if i % 2 else meas("GW001", mid)
            st, ra, _ = http_post(ports["http"], "/gw/v1/periodic-values" if i % 2 else "/gw/v1/measurements", body,
                                  tok)
            http_res.append((mid, st, ra))

    th = [threading.Thread(target=poster, args=(t,)) for t in range(8)]
    for t in th:
        t.start()
    mqtt_senders()
    for t in th:
        t.join(120)
    for k, c in clients.items():
        # a full queue is back-pressure on MQTT (values and broker paths
        # alike): the message is held and the socket not read, then stored
        # and acknowledged; never a PUBACK before it is durable
        for pid, rc in c.acks.items():
            if rc == 0:
                acked.add(sent[k][pid])
            else:
                refused[k] += 1
        bad = {pid: rc for pid, rc in c.acks.items() if rc}
        check("saturated %s: every message acknowledged in the end (%d/%d), held while the queue was full, "
              "no negative PUBACK, no disconnect" % (k, len(c.acks), len(sent[k])),
              len(c.acks) == len(sent[k]) and not bad and not c.closed, (bad, c.closed))
        c.close()
    # a real 3.1.1 gateway under the same saturation: paho resends what the
    # closed connections left unacknowledged, until all of it is stored
    paho = Paho311(ports["mqtt"], "GW001")
    for i in range(n):
        paho.send("data/periodic", periodic("GW001", "sat-paho-%d" % i, mon), "sat-paho-%d" % i)
    th = [threading.Thread(target=poster, args=(t + 100,)) for t in range(8)]
    for t in th:
        t.start()
    for t in th:
        t.join(120)
    got = wait_for(lambda: len(paho.acked) == n, 60)
    check("saturated paho 3.1.1: every message acknowledged in the end, by its own resends (%d/%d, %d disconnects)"
          % (len(paho.acked), n, paho.disconnects), got)
    paho.stop()
    acked |= paho.acked
    bad_http = [r for r in http_res if r[1] != 200 and not (r[1] in (429, 503) and r[2])]
    for mid, st, ra in http_res:
        if st == 200:
            acked.add(mid)
        else:
            refused["http"] += 1
    check("saturated HTTP: every answer is 200, or 429/503 with Retry-After", not bad_http, bad_http[:3])
    print("saturated: acknowledged %d, not stored %s" % (len(acked), refused))
    check("saturated: the queue was full (HTTP got 429s): the test exercised it", refused["http"] > 0, refused)
    log_txt = open(log).read()
    check("saturated: each message not stored is logged (WARN, op, gw, error)",
          "gateway message not stored" in log_txt and "op=demo" in log_txt and "error=E9002" in log_txt)
    kill(p)
    check_acked_stored("saturated, after kill -9", data, acked)
    # stopping (SIGTERM) with messages held for a full queue: what is
    # acknowledged is stored, the rest is not acknowledged, and the stop is
    # clean (no leak or error under the sanitizers)
    p, ports = start(data, log, cfg, {"SUIRO_TEST_WRITER_DELAY_MS": "40"})
    c5, c3 = Raw(ports["mqtt"], "GW002", True), Raw(ports["mqtt"], "GW001", False)
    stop_sent = {}
    for c, k in ((c3, "3.1.1"), (c5, "5.0")):
        for i in range(1, 41):
            mid = "stop-%s-%d" % (k, i)
            stop_sent[(k, i)] = mid
            c.publish("data/periodic" if i % 2 else "data/measurements",
                      periodic(c.gw, mid, mon) if i % 2 else meas(c.gw, mid), i)
    time.sleep(0.05)  # let the server read them (the stop must find them held or in flight)
    at = os.path.getsize(log)
    p.send_signal(signal.SIGTERM)
    for c in (c3, c5):
        c.pump(40, 30)
    term_rc = p.wait(60)
    txt = open(log, errors="replace").read()[at:]
    check("stopping with held messages: a clean stop (exit 0, no sanitizer report)",
          term_rc == 0 and "Sanitizer" not in txt and "runtime error" not in txt, (term_rc, txt[-800:]))
    stop_acked = {stop_sent[("3.1.1", pid)] for pid in c3.acks} | \
        {stop_sent[("5.0", pid)] for pid, rc in c5.acks.items() if rc == 0}
    check("stopping with held messages: 5.0 negative answers are 0x80/0x97 only",
          all(rc in (0, 0x80, 0x97) for rc in c5.acks.values()), c5.acks)
    c3.close()
    c5.close()
    check_acked_stored("stopping with held messages (%d acknowledged)" % len(stop_acked), data, stop_acked)


# ---- 2 and 3. a full disk ------------------------------------------------------

def fill(path):
    """Write until the file system is full; returns the bytes written."""
    n = 0
    with open(path, "ab", buffering=0) as f:
        blk = b"\xa5" * 65536
        while True:
            try:
                n += f.write(blk)
            except OSError:
                break
        while True:
            try:
                n += f.write(b"\xa5" * 512)
            except OSError:
                break
    return n


def case_full_disk():
    mnt = os.path.join(T, "mnt")
    os.mkdir(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", mnt], capture_output=True, text=True)
    if r.returncode:
        print("skip: full-disk cases: cannot mount a tmpfs here (%s)" % r.stderr.strip())
        return
    try:
        full_disk_phases(mnt)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        subprocess.run(["umount", "-l", mnt], capture_output=True)


def full_disk_phases(mnt):
    data = os.path.join(mnt, "data")
    subprocess.run([BIN, "init", "--demo", data], check=True, capture_output=True)
    log = os.path.join(T, "server.log")
    env = {"SUIRO_TEST_RECOVER_MS": "50"}
    p, ports = start(data, log, None, env)
    tok = gw_token(ports["http"], "GW001")
    mon = new_monitor(ports["http"], ["P001", "P006"])
    acked = set()
    # something stored before the disk fills
    st, _, _ = http_post(ports["http"], "/gw/v1/measurements", meas("GW001", "fd-before"), tok)
    check("full disk: a write before the disk fills is stored (200)", st == 200, st)
    if st == 200:
        acked.add("fd-before")
    filler = os.path.join(mnt, "filler")
    log_at = os.path.getsize(log)  # before: a write of the server's own (audit, alarm) may be the first to fail
    fill(filler)
    # the gateways send while the disk is full
    n = 5 * SOAK
    paho = Paho311(ports["mqtt"], "GW002")
    for i in range(n):
        paho.send("data/measurements", meas("GW002", "fd-paho-%d" % i), "fd-paho-%d" % i)
    r311 = Raw(ports["mqtt"], "GW001", False)
    r311.publish("data/measurements", big("GW001", "fd-311-m"), 1)
    r311.pump(1, 10)
    check("full disk 3.1.1: no PUBACK for a message not stored; the connection closes instead",
          not r311.acks and r311.closed, (r311.acks, r311.closed))
    r311.close()
    r311 = Raw(ports["mqtt"], "GW001", False)
    r311.publish("data/periodic", periodic("GW001", "fd-311-p", mon), 7)
    r311.pump(1, 10)
    check("full disk 3.1.1 (broker path): no PUBACK; the connection closes",
          not r311.acks and r311.closed, (r311.acks, r311.closed))
    r311.close()
    r5 = Raw(ports["mqtt"], "GW001", True)
    r5.publish("data/measurements", meas("GW001", "fd-5-m"), 1)
    r5.publish("data/periodic", periodic("GW001", "fd-5-p", mon), 2)
    r5.pump(2, 10)
    # a login waits for its SessionEvent (issue #18): refused (CONNACK 0x88,
    # no session) once the writer has failed, else accepted while a small
    # event still fits -- either way nothing is acknowledged as stored
    check("full disk 5.0: PUBACK 0x80 / 0x97 for messages not stored, never 0 (or the login refused: CONNACK 0x88)",
          (r5.connack == 0 and len(r5.acks) == 2 and all(v in (0x80, 0x97) for v in r5.acks.values()))
          or (r5.connack == 0x88 and not r5.acks), (r5.connack, r5.acks))
    r5.close()
    for path, body in (("/gw/v1/measurements", meas("GW001", "fd-http-m")),
                       ("/gw/v1/periodic-values", periodic("GW001", "fd-http-p", mon))):
        st, ra, b = http_post(ports["http"], path, body, tok)
        check("full disk HTTP %s: 503 with Retry-After, not 200" % path, st == 503 and ra, (st, ra, b[:200]))
    time.sleep(0)  # nothing to wait for: the answers above came from the engine
    with paho.lock:
        early = set(paho.acked)
    check("full disk paho 3.1.1: nothing acknowledged while the disk is full", not early, early)
    txt = open(log).read()[log_at:]
    check("full disk: the write failure is logged as an ERROR saying what to do",
          "level=error" in txt and "storage write failure" in txt and "free disk space" in txt,
          [l for l in txt.splitlines() if "level=error" in l or "not stored" in l][:6])
    # space returns: the server resumes by itself
    os.unlink(filler)
    resumed = wait_for(lambda: "storage writing resumed" in open(log).read()[log_at:], 20)
    check("full disk: once space returns the server resumes writing by itself (logged)", resumed)
    got_all = wait_for(lambda: len(paho.acked) == n, 30)
    check("full disk paho 3.1.1: the held messages go through on the gateway's own resends (%d/%d)" %
          (len(paho.acked), n), got_all)
    acked |= paho.acked
    r5 = Raw(ports["mqtt"], "GW001", True)
    r5.publish("data/measurements", meas("GW001", "fd-5-m"), 1)
    r5.publish("data/periodic", periodic("GW001", "fd-5-p", mon), 2)
    r5.pump(2, 10)
    check("after the resume 5.0: PUBACK 0", r5.acks == {1: 0, 2: 0}, r5.acks)
    if r5.acks.get(1) == 0:
        acked.add("fd-5-m")
    if r5.acks.get(2) == 0:
        acked.add("fd-5-p")
    r5.close()
    r311 = Raw(ports["mqtt"], "GW001", False)
    r311.publish("data/measurements", meas("GW001", "fd-311-m"), 1)
    r311.publish("data/periodic", periodic("GW001", "fd-311-p", mon), 2)
    r311.pump(2, 10)
    check("after the resume 3.1.1: PUBACKs", len(r311.acks) == 2, r311.acks)
    if 1 in r311.acks:
        acked.add("fd-311-m")
    if 2 in r311.acks:
        acked.add("fd-311-p")
    r311.close()
    st, _, _ = http_post(ports["http"], "/gw/v1/measurements", meas("GW001", "fd-http-m"), tok)
    check("after the resume HTTP: 200", st == 200, st)
    if st == 200:
        acked.add("fd-http-m")
    # an app logs in while the server can write: its session is durable
    # before the answer (issue #18), so it survives the kill -9 below
    app0 = srtest.Api(ports["http"])
    check("after the resume: an app logs in (201)", app0.login("APP001", "demo", "demo-app001-secret") == 201)
    paho.stop()
    # 3. kill -9; what was acknowledged is there
    kill(p)
    check_acked_stored("full disk, after kill -9", data, acked)
    # a torn tail (bytes of a write that never completed) that recovery must
    # cut, keeping a copy: with the disk full, the open has no room for it
    segs = sorted(f for f in os.listdir(os.path.join(data, "log")) if f.endswith(".seg"))
    with open(os.path.join(data, "log", segs[-1]), "ab") as f:
        f.write(os.urandom(300))
    fill(filler)
    # a restart with the disk still full starts and serves reads
    log_at = os.path.getsize(log)
    try:
        p, ports = start(data, log, None, env)
        started = True
    except RuntimeError:
        started = False
    check("restart with the disk full: the server starts", started, open(log).read()[log_at:][-800:])
    if started:
        app = srtest.Api(ports["http"])
        app.token = app0.token  # the session from before the kill, restored at start
        st, js = app.call("GET", "/api/v1/stored-values/latest?dataId=P001")
        print("read-only latest:", st, js)
        check("restart with the disk full: reads are served (AP-IF latest value, a session from before the restart)",
              st == 200 and js.get("values"), (st, js))
        # a new app login cannot be recorded on a read-only engine (issue #18:
        # logins fail closed): 503 E9001 with Retry-After, no token
        st, ra, b = http_post(ports["http"], "/api/v1/sessions", {"operatorId": "demo", "appId": "APP001",
                                                                  "secret": "demo-app001-secret"}, None)
        check("restart with the disk full: a new app login is refused (503 E9001 with Retry-After, no token)",
              st == 503 and ra and b"E9001" in b and b"token" not in b, (st, ra, b[:300]))
        # a gateway's HTTP login cannot be recorded on a read-only engine
        # (issue #18, fail closed): refused, no token, so no write either
        st, ra, b = http_post(ports["http"], "/gw/v1/sessions", {"operatorId": "demo", "gatewayId": "GW001",
                                                                 "secret": SECRETS["GW001"]}, None)
        check("restart with the disk full: a gateway's HTTP login is refused (503 E9001 with Retry-After, no token)",
              st == 503 and ra and b"E9001" in b and b"token" not in b, (st, ra, b[:200]))
        st, ra, b = http_post(ports["http"], "/gw/v1/measurements", big("GW001", "fd-ro-http"), None)
        # the body is over max_unauth_body: the guard answers 401 while it still
        # streams and drops the rest before closing (api/gwif_http.c LIMITS), so
        # the client always reads the answer
        check("restart with the disk full: a write is not acknowledged (no session: 401 E2001)",
              st == 401 and b"E2001" in b, (st, b[:200]))
        r5 = Raw(ports["mqtt"], "GW002", True)
        r5.publish("data/measurements", big("GW002", "fd-ro-5"), 1)
        r5.pump(1, 10)
        check("restart with the disk full 5.0: the login is refused (CONNACK 0x88: a read-only engine cannot record "
              "its session; issue #18, fail closed), nothing acknowledged", r5.connack == 0x88 and not r5.acks and
              r5.closed, (r5.connack, r5.acks, r5.closed))
        r5.close()
        r3 = Raw(ports["mqtt"], "GW002", False)
        check("restart with the disk full 3.1.1: the login is refused (CONNACK rc 3, server unavailable)",
              r3.connack == 3, r3.connack)
        r3.close()
        check("... logged as refused logins", "gateway login refused" in open(log).read()[log_at:])
        txt = open(log).read()[log_at:]
        check("restart with the disk full (a torn tail to cut): it opens READ-ONLY and says so in its log",
              "READ-ONLY" in txt and "level=error" in txt, txt[-600:])
        term(p, log, "read-only server")
    os.unlink(filler)
    p, ports = start(data, log, None, env)
    tok = gw_token(ports["http"], "GW001")
    st, _, _ = http_post(ports["http"], "/gw/v1/measurements", meas("GW001", "fd-after"), tok)
    check("after space returns and a restart: writes are stored (200)", st == 200, st)
    if st == 200:
        acked.add("fd-after")
    term(p, log, "server after the full disk")
    check_acked_stored("full disk, at the end", data, acked)


try:
    case_saturated()
    case_full_disk()
except Exception as e:  # a crash of the test is a failure, with the log shown
    import traceback
    traceback.print_exc()
    check("the test ran to its end", False, repr(e))
srtest.finish(check, T, procs)
