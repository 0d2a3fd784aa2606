"""tests/integration/srtest.py -- the one harness of the Python integration
tests: checks that count (Checks, finish); the real server started on ports
chosen at run time or a fixed one (start_server, free_port) and stopped by
its PID (stop_server); the service manager's notification socket
(NotifySocket); data directories provisioned (provision_gwsim,
gwsim_sheet, import_sheet, OTHER_OPERATOR_SHEET); HTTP on one keep-alive
connection (Api) or one fresh connection (http_once); an app's push URL
(PushReceiver); raw MQTT packets and a raw gateway (mqtt_*, RawGw); the
only place a paho-mqtt client is made (paho_client: 1.6 and 2.x); and a
NATS JetStream cluster of nats-server processes (start_nats_cluster, the
cluster mode's tests, docs/cluster.md).
/usr/bin/python3 and the standard library only (paho where MQTT is used)."""
import http.client
import http.server
import json
import subprocess
import threading
import time


class Checks:
    """ok:/FAIL: lines and the counts; exit_code() for sys.exit."""

    def __init__(self):
        self.passes = self.fails = 0

    def __call__(self, name, cond, extra=""):
        if cond:
            self.passes += 1
            print("ok:", name, flush=True)
        else:
            self.fails += 1
            print("FAIL:", name, extra, flush=True)
        return cond

    def summary(self):
        print("%d passed, %d failed" % (self.passes, self.fails), flush=True)
        return 1 if self.fails else 0

    def failed(self, e):
        """An exception ended the test: its traceback, and the check "no
        exception" failed."""
        import traceback
        traceback.print_exc()
        self("no exception", False, repr(e))


def paho_client(client_id, protocol=None, **kw):
    """A paho-mqtt client with the 1.x callback signatures, on paho 1.6
    (Debian 12, Ubuntu 24.04) and 2.x (Debian 13): 2.x takes the callback API
    version as its first argument (VERSION1 keeps on_connect(client, userdata,
    flags, rc[, properties]) and the others as 1.6 calls them). protocol
    defaults to MQTT 3.1.1; kw are Client's other keywords (clean_session).
    paho is imported here so that the tests without MQTT do not need it."""
    import paho.mqtt.client as mqtt
    if protocol is None:
        protocol = mqtt.MQTTv311
    if hasattr(mqtt, "CallbackAPIVersion"):  # paho >= 2.0
        return mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, client_id=client_id, protocol=protocol, **kw)
    return mqtt.Client(client_id=client_id, protocol=protocol, **kw)


def start_server(binary, data, log, mqtt_port=0, http_port=0, extra=(), config=None, env=None, until=None,
                 timeout=30):
    """`suiro serve` on loopback; returns (process, {"mqtt": port, "http": port, ...})
    read from its `listening NAME=HOST:PORT` lines. With config, the server
    reads its listeners and data directory from that file (data, mqtt_port
    and http_port are not passed); env replaces the environment; until names
    the listener to wait for (http or https by default), at most timeout
    seconds. A thread keeps draining the server's stdout (so it never blocks
    on it); a server that does not come up is killed (by its PID) and this
    raises RuntimeError."""
    if config is not None:
        args = [binary, "serve", "--config", config]
    else:
        args = [binary, "serve", "--data", data, "--mqtt", "127.0.0.1:%d" % mqtt_port,
                "--http", "127.0.0.1:%d" % http_port]
    p = subprocess.Popen(args + list(extra), stdout=subprocess.PIPE, stderr=open(log, "a"), text=True, env=env)
    ports = {}
    ready = threading.Event()

    def up():
        return until in ports if until else ("http" in ports or "https" in ports)

    def reader():
        for line in p.stdout:
            line = line.strip()
            if line.startswith("listening ") and "=" in line:
                k, v = line[len("listening "):].split("=", 1)
                ports[k] = int(v.rsplit(":", 1)[1])
                if up():
                    ready.set()
        ready.set()
    threading.Thread(target=reader, daemon=True).start()
    if not ready.wait(timeout) or not up():
        if p.poll() is None:
            p.kill()
        p.wait()
        raise RuntimeError("server did not start (ports %r, exit %r; see %s)" % (ports, p.returncode, log))
    return p, ports


def stop_server(p, timeout=30, sig=None):
    """SIGTERM (or sig: SIGINT stops `suiro gwsim run`) by PID and wait; the
    exit code (-9 when it had to be killed)."""
    import signal
    if p is None or p.poll() is not None:
        return p.returncode if p is not None else None
    p.send_signal(sig if sig is not None else signal.SIGTERM)
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return -9


def wait_until(pred, timeout=10.0, step=0.02):
    """Poll pred() until it is true or timeout seconds passed; its last value."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= end:
            return v
        time.sleep(step)


def free_port():
    """A TCP port on 127.0.0.1 that nobody listens on now (for a server that
    must come back on the same port after a restart)."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class NotifySocket:
    """The service manager's end of systemd's notification protocol
    (api/sdnotify.h): a unix datagram socket bound to name (a path, or
    '@name' for an abstract one). env() is an environment naming it
    (NOTIFY_SOCKET) for start_server, with **more added; wait_for(line)
    reads datagrams until one has that line (READY=1, STOPPING=1,
    WATCHDOG=1) or timeout seconds passed: (its lines or None, every datagram
    read); pending() is a datagram already there, or None (without waiting)."""

    def __init__(self, name):
        import socket
        self.name = name
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind("\0" + name[1:] if name.startswith("@") else name)

    def env(self, **more):
        import os
        e = dict(os.environ)
        for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            e.pop(k, None)
        e["NOTIFY_SOCKET"] = self.name
        e.update(more)
        return e

    def wait_for(self, line, timeout=20.0):
        import socket
        seen = []
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.s.settimeout(max(0.01, end - time.monotonic()))
            try:
                msg = self.s.recv(4096).decode()
            except socket.timeout:
                break
            seen.append(msg)
            if line in msg.split("\n"):
                return msg.split("\n"), seen
        return None, seen

    def pending(self):
        self.s.setblocking(False)
        try:
            return self.s.recv(4096).decode()
        except BlockingIOError:
            return None
        finally:
            self.s.setblocking(True)

    def close(self):
        self.s.close()


def gwsim_sheet(binary, gateways, points, operator=None):
    """`suiro gwsim sheet`'s set-up sheet (GATEWAYS gateways of POINTS points
    each, operator "sim" unless named) as text."""
    return subprocess.run([binary, "gwsim", "sheet", "--gateways", str(gateways), "--points", str(points)] +
                          (["--operator", operator] if operator else []),
                          check=True, capture_output=True, text=True).stdout


def provision_gwsim(binary, data, tmp, gateways, points, operator=None, extra="", demo=False):
    """A new data directory (with the demo operator when demo) and gwsim's
    sheet imported, with extra (more sheet sections) appended to it."""
    import os
    subprocess.run([binary, "init"] + (["--demo"] if demo else []) + [data], check=True, capture_output=True)
    import_sheet(binary, data, os.path.join(tmp, (operator or "sim") + ".csv"),
                 gwsim_sheet(binary, gateways, points, operator) + extra)


def code(body):
    """The interface.md result code of an answer body, or None."""
    return body.get("result", {}).get("code") if isinstance(body, dict) else None


class Api:
    """HTTP calls on one keep-alive connection, reconnecting once when the
    server closed an idle one. call() returns (status, JSON or text)."""

    def __init__(self, port, token=None, source=None):
        self.port = port
        self.token = token
        self.source = (source, 0) if source else None  # a loopback address of 127/8 to connect from
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=self.source)

    def _reconnect(self):
        self.c.close()
        self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60, source_address=self.source)

    def call(self, method, path, body=None, headers=None, raw=False):
        h = dict(headers or {})
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        for attempt in (0, 1):
            try:
                self.c.request(method, path, body=body, headers=h)
                r = self.c.getresponse()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._reconnect()
                if attempt:
                    raise
        data = r.read()
        if raw:
            return r.status, data, r
        try:
            return r.status, json.loads(data) if data else None
        except ValueError:
            return r.status, data.decode(errors="replace")

    def login(self, app, op, secret):
        st, b = self.call("POST", "/api/v1/sessions", {"appId": app, "operatorId": op, "secret": secret})
        if st == 201:
            self.token = b["token"]
        return st


def http_once(port, method, path, body=None, token=None, headers=None, source=None, timeout=30):
    """One request on a fresh connection (from the loopback address source):
    (status, response, body bytes, complete); complete is False when the
    server closed before the whole body (the bytes that came are returned).
    A dict or list body is sent as JSON. OSError and http.client.HTTPException
    pass through."""
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0) if source else None)
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        try:
            data, complete = r.read(), True
        except http.client.IncompleteRead as e:
            data, complete = e.partial, False
        return r.status, r, data, complete
    finally:
        c.close()


def finish(check, tmp, procs, log_name="server.log"):
    """Stop what is still running (by PID; with every nats-server that
    start_nats_cluster started), show the server's log when a check failed,
    remove the temporary directory, and exit with the verdict."""
    import os
    import shutil
    import sys
    for p in list(procs) + _nats_procs:
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()
    if check.fails:
        try:
            print(open(os.path.join(tmp, log_name)).read()[-3000:])
        except OSError:
            pass
    shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(check.summary())


# ---- raw MQTT (for exact timing and for clients that misbehave on purpose) --

def _mqtt_str(s):
    b = s.encode() if isinstance(s, str) else s
    return len(b).to_bytes(2, "big") + b


def _mqtt_len(n):
    out = bytearray()
    while True:
        d = n % 128
        n //= 128
        out.append(d | (0x80 if n else 0))
        if not n:
            return bytes(out)


mqtt_varint = _mqtt_len  # a remaining-length / property-length varint
mqtt_str = _mqtt_str     # a length-prefixed UTF-8 string


def mqtt_packet(ptype_flags, body):
    """One MQTT packet: fixed header byte, remaining length, body."""
    return bytes([ptype_flags]) + _mqtt_len(len(body)) + body


def mqtt_connect(client_id, username, password, keepalive=60, v5=False):
    """A CONNECT packet (clean session / clean start, user name + password)."""
    vh = _mqtt_str("MQTT") + bytes([5 if v5 else 4, 0xC2]) + keepalive.to_bytes(2, "big")
    if v5:
        vh += b"\x00"  # no properties
    return mqtt_packet(0x10, vh + _mqtt_str(client_id) + _mqtt_str(username) + _mqtt_str(password))


def mqtt_publish(topic, payload, pid=0, qos=1, v5=False):
    """A PUBLISH packet (QoS 0 or 1)."""
    b = payload.encode() if isinstance(payload, str) else payload
    vh = _mqtt_str(topic) + (pid.to_bytes(2, "big") if qos else b"") + (b"\x00" if v5 else b"")
    return mqtt_packet(0x30 | (qos << 1), vh + b)


def mqtt_read(sock):
    """The next packet from a blocking socket: (type, body bytes); raises
    ConnectionError when the server closed it."""
    def need(n):
        out = b""
        while len(out) < n:
            d = sock.recv(n - len(out))
            if not d:
                raise ConnectionError("closed by the server")
            out += d
        return out
    h = need(1)[0]
    n, mul = 0, 1
    while True:
        d = need(1)[0]
        n += (d & 0x7F) * mul
        mul *= 128
        if not d & 0x80:
            break
    return h >> 4, need(n) if n else b""


class RawGw:
    """A gateway on one blocking socket: connect, then publish QoS 1 and wait
    for its PUBACK (publish_wait returns the PUBACK's reason code, 0 for 3.1.1),
    so the time between the two is exactly the server's acknowledgement."""

    def __init__(self, port, op, gw, secret, v5=False, timeout=15, source=None):
        import socket
        self.v5 = v5
        self.root = "wip/v1/%s/gw/%s" % (op, gw)
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                          source_address=(source, 0) if source else None)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.s.sendall(mqtt_connect(gw, "%s/%s" % (op, gw), secret, v5=v5))
        t, body = mqtt_read(self.s)
        self.connack = body[1] if t == 2 and len(body) >= 2 else None
        self.pid = 0

    def publish_wait(self, suffix, payload):
        self.pid = self.pid % 65535 + 1
        self.s.sendall(mqtt_publish(self.root + "/" + suffix, payload, self.pid, 1, self.v5))
        while True:
            t, body = mqtt_read(self.s)
            if t == 4 and int.from_bytes(body[:2], "big") == self.pid:
                return body[2] if self.v5 and len(body) > 2 else 0

    def close(self):
        try:
            self.s.sendall(b"\xe0\x00")
            self.s.close()
        except OSError:
            pass


class PushReceiver:
    """An app's push URL for the tests: an HTTP server on 127.0.0.1. mode: "ok" answers 200, "fail" 503,
    "hold" blocks the request until release() (at most 8 s) then 200.
    `down()` is a receiver whose port is bound but not listening (connections
    are refused) until up(). Records every request: (path, headers, body,
    status) in arrival order; `arrived` also counts requests still held.
    port: 0 a free one; another receiver's port (after its stop()): the same
    app coming back on the same push URL."""

    def __init__(self, listening=True, port=0):
        self.cv = threading.Condition()
        self.reqs = []          # dicts: path, headers, body, status, t
        self.arrived = []       # delivery ids, as requests arrive (before the answer)
        self.mode = "ok"
        self.released = threading.Event()
        rcv = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                t = time.monotonic()
                with rcv.cv:
                    rcv.arrived.append(self.headers.get("X-Suiro-Delivery"))
                    mode = rcv.mode
                    rcv.cv.notify_all()
                if mode == "hold":
                    rcv.released.wait(8)
                status = 503 if mode == "fail" else 200
                with rcv.cv:   # recorded before the answer: once suiro sees 200 the record exists
                    rcv.reqs.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                     "body": body, "status": status, "t": t})
                    rcv.cv.notify_all()
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:   # suiro gave up on this request (stopped): nothing to answer
                    pass

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), H, bind_and_activate=False)
        self.httpd.daemon_threads = True
        self.httpd.server_bind()
        self.port = self.httpd.server_address[1]
        self.thread = None
        if listening:
            self.up()

    def up(self):
        self.httpd.server_activate()
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.released.set()
        if self.thread:
            self.httpd.shutdown()
            self.thread = None
        self.httpd.server_close()

    def release(self):
        self.released.set()

    def wait_for(self, pred, timeout=10.0):
        with self.cv:
            return self.cv.wait_for(lambda: pred(self), timeout)

    def accepted(self, prefix):
        with self.cv:
            return [r for r in self.reqs if r["status"] == 200 and r["path"].startswith(prefix)]

    def failed(self, prefix):
        with self.cv:
            return [r for r in self.reqs if r["status"] != 200 and r["path"].startswith(prefix)]

    def all(self):
        with self.cv:
            return list(self.reqs)

    def paths(self):
        """The paths of the requests answered so far, in order."""
        with self.cv:
            return [r["path"] for r in self.reqs]

    def wait(self, pred, timeout=10.0):
        """The first push as (path, body parsed as JSON, or the bytes) for
        which pred((path, body)) holds, waiting at most timeout s; or None."""
        def parsed():
            out = []
            for r in self.reqs:
                try:
                    out.append((r["path"], json.loads(r["body"])))
                except ValueError:
                    out.append((r["path"], r["body"]))
            return out
        with self.cv:
            self.cv.wait_for(lambda: any(pred(g) for g in parsed()), timeout)
            found = [g for g in parsed() if pred(g)]
        return found[0] if found else None



def gw_envelope(mtype, mid, body, ts="2026-11-22T00:00:00.000Z"):
    """A GW-IF message as JSON text."""
    return json.dumps({"header": {"messageType": mtype, "messageId": mid, "timestamp": ts}, "body": body})


def rss_kb(pid):
    """VmRSS of a process in KiB (0 when it is gone)."""
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


# A second operator ("other": gateway GWX, app APPX, point PX1) for the tests
# that check one operator against another.
OTHER_OPERATOR_SHEET = """#suiro-setup-sheet v1
[operator]
id,name
other,Other utility

[gateways]
id,name,secret
GWX,Other gateway,other-gw-secret

[apps]
id,name,secret,push_url
APPX,Other app,other-app-secret,

[facilities]
id,name
FX,Other plant

[equipment]
id,facility,name
EX,FX,Other pump

[devices]
id,equipment,gateway,name
DX,EX,GWX,Other device

[datapoints]
id,device,name,type,unit,min,max,kind
PX1,DX,Other flow,number,m3/h,0,100,both

[grants]
app,datapoint,access
APPX,PX1,both
"""


def import_sheet(binary, data, path, text):
    """Write a set-up sheet to path and import it into data (it must succeed)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    subprocess.run([binary, "sheet", "import", path, data], check=True, capture_output=True)


# ---- the Admin API (/admin/v1, docs/admin.md) ----------------------------------

def init_with_admin(binary, data, demo=False, second=None):
    """`suiro init` of a new data directory (the demo operator when demo);
    the first platform admin's temporary password, as init prints it. With
    second (an ID), init also makes a second platform admin (the two-person
    rule's approver, --second-admin) when the binary has that option: then
    (password, second's password), else (password, None)."""
    args = [binary, "init"] + (["--demo"] if demo else [])
    if second:
        r = subprocess.run(args + ["--second-admin", second, data], capture_output=True, text=True)
        if r.returncode != 2:  # 2: a usage error, no such option (the directory is untouched)
            if r.returncode:
                raise RuntimeError("init: %s" % r.stderr)
            pws = [ln.split(":", 1)[1].strip() for ln in r.stdout.splitlines() if ln.startswith("temporary password:")]
            return pws[0], pws[1]
    r = subprocess.run(args + [data], check=True, capture_output=True, text=True)
    pw = [ln.split(":", 1)[1].strip() for ln in r.stdout.splitlines() if ln.startswith("temporary password:")][0]
    return (pw, None) if second else pw


def init_with_admins(binary, data, demo=False, second="admin2", admin=None):
    """`suiro init` with the first platform admin (admin; None: init's
    default "admin") and a second one (second; None: none), who approves the
    first one's privilege changes (the two-person rule): their temporary
    passwords, as init prints them. (Cluster nodes replicate users: each
    node's init names its admins apart.)"""
    cmd = ([binary, "init"] + (["--demo"] if demo else []) + (["--admin", admin] if admin else []) +
           (["--second-admin", second] if second else []) + [data])
    r = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return [ln.split(":", 1)[1].strip() for ln in r.stdout.splitlines() if ln.startswith("temporary password:")]


def approve_if_pending(approver, st, b):
    """A change answered 202 (a pending change of the two-person rule) is
    approved by approver (another admin's Api): the approval's (status,
    body); any other answer is returned as it is."""
    if st != 202 or approver is None:
        return st, b
    return approver.call("POST", "/admin/v1/pending/%s/approve" % b["pendingId"])


def retry_busy(call, timeout=60):
    """call() -> (status, body, ...) again while it answers 503 E9002 (a
    cluster whose partition's owner is not known yet or is changing:
    docs/cluster.md "Forwarding"; the answer says Retry-After), bounded."""
    end = time.monotonic() + timeout
    while True:
        r = call()
        if not (r[0] == 503 and code(r[1]) == "E9002") or time.monotonic() >= end:
            return r
        time.sleep(0.2)


def admin_session(port, user, password, new_password=None, wait=0):
    """An Api logged in on /admin/v1 as user; with new_password, the forced
    change of a temporary password is made (the session is a normal one
    from then on). wait: seconds the login may be refused meanwhile (a user
    made on another cluster node, still on its way here). Raises
    RuntimeError when a step is refused."""
    api = Api(port)
    end = time.monotonic() + wait
    while True:
        st, b = api.call("POST", "/admin/v1/sessions", {"userId": user, "password": password})
        if st == 201 or st != 401 or time.monotonic() >= end:
            break
        time.sleep(0.1)
    if st != 201:
        raise RuntimeError("login of %s refused: %r %r" % (user, st, b))
    api.token = b["token"]
    if new_password:
        st, b = retry_busy(lambda: api.call("PUT", "/admin/v1/me/password",
                                            {"currentPassword": password, "newPassword": new_password}))
        if st == 500 and code(b) == "E9001" and "may have been made" in json.dumps(b):
            # a cluster's forwarded change the owner did not answer in time: its outcome is unknown, so
            # it is not sent again (docs/cluster.md "Forwarding"): made iff the new password logs in
            again = Api(port)
            if wait_until(lambda: again.call("POST", "/admin/v1/sessions",
                                             {"userId": user, "password": new_password})[0] == 201, timeout=20,
                          step=0.2):
                return admin_session(port, user, new_password)
            return admin_session(port, user, password, new_password)   # not made: the old password holds
        if st not in (200, 204):
            raise RuntimeError("password change of %s refused: %r %r" % (user, st, b))
        # in a cluster the change is partition 0's owner's (forwarded): this
        # node sees it once the user's event reached it (bounded)
        wait_until(lambda: (lambda r: r[0] == 200 and not r[1].get("mustChangePassword"))(
            api.call("GET", "/admin/v1/me")), timeout=20, step=0.05)
    return api


def admin_new_user(port, admin, uid, kind, scope_id, roles, new_password, approver=None):
    """admin (an Api) creates user uid of scope (kind, scope_id) with roles;
    a creation answered 202 (a pending change: the two-person rule) is
    approved by approver (another admin's Api); the user logs in with the
    temporary password the answer gives and changes it: its Api. (In a
    cluster the creation is partition 0's owner's: the login waits until the
    user reached this node.)"""
    st, b = retry_busy(lambda: admin.call("POST", "/admin/v1/users", {"id": uid, "scope": {"kind": kind, "id": scope_id},
                                                                      "roles": roles}))
    if st == 202 and approver is not None:
        ast, ab = retry_busy(lambda: approver.call("POST", "/admin/v1/pending/%s/approve" % b["pendingId"]))
        if ast != 200:
            raise RuntimeError("approving the creation of %s refused: %r %r" % (uid, ast, ab))
        st = 201
    if st != 201:
        raise RuntimeError("creating %s refused: %r %r" % (uid, st, b))
    return admin_session(port, uid, b["password"], new_password, wait=20)


def admin_applied(answer, approver):
    """(status, body) of an admin change: a 202 (a pending change: the
    two-person rule) is approved by approver (another admin's Api) when there
    is one, and then (200, None) means applied (the approval's answer is not
    the change's)."""
    st, b = answer
    if st == 202 and approver is not None:
        ast, ab = retry_busy(lambda: approver.call("POST", "/admin/v1/pending/%s/approve" % b["pendingId"]))
        return (200, None) if ast == 200 else (ast, ab)
    return st, b


# ---- data protection (R-SE-3, docs/signatures.md) -------------------------------

class Signer:
    """A key and its self-signed X.509 certificate (python3-cryptography) for
    an app's or a gateway's `protection`: pem (register it with `suiro cert
    import` or PUT .../certificate), cert_id ("ID#SERIAL", the serial in
    hexadecimal), sign(bytes) -> base64url (JWS form: ECDSA r||s), and
    protection(bytes) -> the protection object. alg: ES256, ES384 or EdDSA;
    days < 0 makes an expired certificate."""

    def __init__(self, subject, serial, alg="ES256", days=1):
        import datetime as _dt
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519
        from cryptography.x509.oid import NameOID
        self.alg, self.subject, self.serial = alg, subject, serial
        if alg == "EdDSA":
            self.key, self._hash = ed25519.Ed25519PrivateKey.generate(), None
        else:
            curve, self._hash = (ec.SECP256R1(), hashes.SHA256()) if alg == "ES256" else (ec.SECP384R1(), hashes.SHA384())
            self.key = ec.generate_private_key(curve)
        self._half = {"ES256": 32, "ES384": 48}.get(alg)
        now = _dt.datetime.now(_dt.timezone.utc)
        start, end = (now - _dt.timedelta(minutes=5), now + _dt.timedelta(days=days)) if days > 0 else \
            (now - _dt.timedelta(days=2), now - _dt.timedelta(days=1))
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
                .serial_number(serial).not_valid_before(start).not_valid_after(end)
                .sign(self.key, None if alg == "EdDSA" else self._hash))
        self.pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        self.cert_id = "%s#%X" % (subject, serial)

    def sign(self, data):
        import base64
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
        if self.alg == "EdDSA":
            raw = self.key.sign(data)
        else:
            r, s = decode_dss_signature(self.key.sign(data, ec.ECDSA(self._hash)))
            raw = r.to_bytes(self._half, "big") + s.to_bytes(self._half, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def protection(self, data):
        return {"signAlg": self.alg, "certId": self.cert_id, "signature": self.sign(data)}

    def verify(self, signature, data):
        """True if signature (base64url) is this key's over data."""
        import base64
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
        raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        try:
            if self.alg == "EdDSA":
                self.key.public_key().verify(raw, data)
            else:
                r, s = int.from_bytes(raw[:self._half], "big"), int.from_bytes(raw[self._half:], "big")
                self.key.public_key().verify(encode_dss_signature(r, s), data, ec.ECDSA(self._hash))
            return True
        except InvalidSignature:
            return False


class OpensslSigner:
    """A key and its self-signed X.509 certificate made by the `openssl`
    command (R-SE-3 tests: "real keys made by openssl"), for every signature
    algorithm of docs/signatures.md: ES256 (P-256), ES384 (P-384), PS256
    (RSA 2048, PSS with SHA-256 and salt 32), EdDSA (Ed25519). Same interface
    as Signer: pem, cert_id ("ID#SERIAL"), sign(bytes) -> base64url (JWS
    form: ECDSA's DER converted to r||s), protection(bytes). days < 0: a
    certificate that has expired (notAfter before notBefore, a day ago).
    Its files under tmpdir."""

    GENPKEY = {"ES256": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
               "ES384": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
               "PS256": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
               "EdDSA": ["-algorithm", "ED25519"]}

    def __init__(self, subject, serial, tmpdir, alg="ES256", days=1):
        import os
        self.alg, self.subject, self.serial = alg, subject, serial
        base = os.path.join(tmpdir, "%s-%X-%s" % (subject, serial, alg))
        self.key_file, self.cert_file, self._tmp = base + ".key", base + ".crt", base

        def run(*a):
            return subprocess.run(["openssl"] + list(a), check=True, capture_output=True)
        run("genpkey", *self.GENPKEY[alg], "-out", self.key_file)
        run("req", "-new", "-key", self.key_file, "-subj", "/CN=" + subject, "-out", base + ".csr")
        run("x509", "-req", "-in", base + ".csr", "-signkey", self.key_file, "-days", str(days if days > 0 else -1),
            "-set_serial", str(serial), "-out", self.cert_file)
        with open(self.cert_file) as fh:
            self.pem = fh.read()
        self.cert_id = "%s#%X" % (subject, serial)

    def _sign_args(self, data_file):
        if self.alg == "EdDSA":
            return ["pkeyutl", "-sign", "-rawin", "-inkey", self.key_file, "-in", data_file]
        md = "-sha384" if self.alg == "ES384" else "-sha256"
        pss = ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"] if self.alg == "PS256" else []
        return ["dgst", md] + pss + ["-sign", self.key_file, data_file]

    def sign(self, data):
        import base64
        f = self._tmp + ".msg"
        with open(f, "wb") as fh:
            fh.write(data)
        raw = subprocess.run(["openssl"] + self._sign_args(f), check=True, capture_output=True).stdout
        if self.alg in ("ES256", "ES384"):  # DER SEQUENCE {INTEGER r, INTEGER s} -> r || s
            half = 32 if self.alg == "ES256" else 48
            i = 2 if raw[1] < 0x80 else 2 + (raw[1] & 0x7F)
            ints = []
            for _ in range(2):
                n = raw[i + 1]
                ints.append(int.from_bytes(raw[i + 2:i + 2 + n], "big"))
                i += 2 + n
            raw = ints[0].to_bytes(half, "big") + ints[1].to_bytes(half, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def protection(self, data):
        return {"signAlg": self.alg, "certId": self.cert_id, "signature": self.sign(data)}


# ---- NATS JetStream (the cluster mode, docs/cluster.md) --------------------

_nats_procs = []  # every nats-server started here: finish() stops them by PID


def nats_server_path():
    """The nats-server binary (scripts/deps.sh installs it), or None."""
    import os
    import shutil
    w = shutil.which("nats-server")
    if w:
        return w
    for c in ("/usr/sbin/nats-server", "/usr/bin/nats-server"):  # sbin is not on every PATH
        if os.access(c, os.X_OK):
            return c
    return None


class NatsCluster:
    """n nats-server JetStream nodes on loopback (start_nats_cluster): node i
    has a client port, a cluster-route port and a monitoring port, all
    chosen free at start and kept across stop(i)/start(i), its store under
    tmp/nats-i, and the cluster name "srtest". urls() is the comma-separated
    client URL list suiro's [cluster] nats takes."""

    def __init__(self, tmp, n, name="srtest"):
        import os
        self.tmp, self.n, self.name = tmp, n, name
        self.bin = nats_server_path()
        self.client = [free_port() for _ in range(n)]
        self.route = [free_port() for _ in range(n)]
        self.mon = [free_port() for _ in range(n)]
        self.procs = [None] * n
        self.dirs = [os.path.join(tmp, "nats-%d" % i) for i in range(n)]
        for d in self.dirs:
            os.makedirs(d, exist_ok=True)

    def urls(self, nodes=None):
        return ",".join("nats://127.0.0.1:%d" % self.client[i] for i in (nodes if nodes is not None else range(self.n)))

    def start(self, i):
        """Start node i (again) on its ports and store."""
        import os
        routes = ",".join("nats-route://127.0.0.1:%d" % self.route[j] for j in range(self.n) if j != i)
        args = [self.bin, "-a", "127.0.0.1", "-p", str(self.client[i]), "-m", str(self.mon[i]),
                "-js", "-sd", self.dirs[i], "-n", "n%d" % i]
        if self.n > 1:  # one node alone is a plain JetStream server (no meta group to elect)
            args += ["--cluster_name", self.name, "--cluster", "nats://127.0.0.1:%d" % self.route[i], "--routes", routes]
        log = open(os.path.join(self.tmp, "nats-%d.log" % i), "a")
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self.procs[i] = p
        _nats_procs.append(p)
        return p

    def stop(self, i, kill=False):
        """Stop node i by its PID (SIGKILL with kill)."""
        import signal
        p = self.procs[i]
        if p is None:
            return None
        rc = stop_server(p, timeout=15, sig=signal.SIGKILL if kill else None)
        self.procs[i] = None
        return rc

    def stop_all(self):
        for i in range(self.n):
            self.stop(i)

    def jsz(self, i, query=""):
        """Node i's /jsz monitoring answer (a dict), None if it does not answer."""
        try:
            st, _, body, _ = http_once(self.mon[i], "GET", "/jsz" + query, timeout=2)
            return json.loads(body) if st == 200 else None
        except (OSError, ValueError):
            return None

    def meta_leader(self):
        """The node name ("n0".."") of the JetStream meta leader every running
        node agrees on, or None."""
        seen = set()
        for i in range(self.n):
            if self.procs[i] is None:
                continue
            j = self.jsz(i)
            if not j:
                return None
            seen.add((j.get("meta_cluster") or {}).get("leader"))
        return seen.pop() if len(seen) == 1 and None not in seen else None

    def wait_ready(self, timeout=30):
        """Bounded: until every running node answers /jsz and they agree on a
        meta leader (and /healthz?js-enabled-only answers ok). True if so."""
        def ok():
            if self.n > 1 and not self.meta_leader():
                return False
            for i in range(self.n):
                if self.procs[i] is None:
                    continue
                try:
                    st, _, _, _ = http_once(self.mon[i], "GET", "/healthz?js-enabled-only=true", timeout=2)
                except OSError:
                    return False
                if st != 200:
                    return False
            return True
        return bool(wait_until(ok, timeout=timeout, step=0.1))

    def stream_leader(self, stream):
        """The index of the node leading stream (from /jsz?streams=true), or None."""
        for i in range(self.n):
            if self.procs[i] is None:
                continue
            j = self.jsz(i, "?streams=true") or {}
            for acc in j.get("account_details") or []:
                for sd in acc.get("stream_detail") or []:
                    if sd.get("name") == stream:
                        leader = (sd.get("cluster") or {}).get("leader")
                        if leader and leader.startswith("n") and leader[1:].isdigit():
                            return int(leader[1:])
        return None


# ---- cluster-mode helpers (docs/cluster.md), shared by the test_cluster_* tests ----

def cluster_partition(op, n):
    """docs/cluster.md "Partitions", again in Python: FNV-1a 64 of the
    operator id, then Lamping and Veach's jump consistent hash; the
    platform ("" or None) and a single partition are partition 0."""
    M = 0xFFFFFFFFFFFFFFFF
    if not op or n <= 1:
        return 0
    h = 0xcbf29ce484222325
    for b in op.encode():
        h = ((h ^ b) * 0x100000001b3) & M
    b, j = -1, 0
    while j < n:
        b = j
        h = (h * 2862933555777941757 + 1) & M
        j = int((b + 1) * (float(1 << 31) / float((h >> 33) + 1)))
    return b


def cluster_ini(path, nats, node, partitions, **keys):
    """Write a suiro.ini with a [cluster] section (nats, node, partitions,
    then keys in order: replicas=3, owned="all", ...); returns path."""
    with open(path, "w") as f:
        f.write("[cluster]\nnats = %s\nnode = %s\npartitions = %d\n" % (nats, node, partitions))
        for k, v in keys.items():
            f.write("%s = %s\n" % (k, v))
    return path


def gw_session(port, op, gw, secret):
    """A GW-IF HTTP session of gateway gw of operator op: an Api with its
    token, or None when the login is refused."""
    api = Api(port)
    st, b = api.call("POST", "/gw/v1/sessions", {"operatorId": op, "gatewayId": gw, "secret": secret})
    if st != 201:
        return None
    api.token = b["token"]
    return api


def start_nats_cluster(tmp, n=3, timeout=30):
    """n JetStream nodes (NatsCluster) started and ready (a meta leader
    elected, bounded by timeout: RuntimeError otherwise). Stopped by PID in
    finish(), or by the caller's stop_all()."""
    c = NatsCluster(tmp, n)
    if not c.bin:
        raise RuntimeError("nats-server is not installed (scripts/deps.sh installs it)")
    for i in range(n):
        c.start(i)
    if not c.wait_ready(timeout):
        c.stop_all()
        raise RuntimeError("the NATS cluster elected no meta leader within %ds (see %s/nats-*.log)" % (timeout, tmp))
    return c


# ---- the Admin API's role table, read from docs/admin.md (test_admin_matrix,
# test_cluster_fwd: one copy of the expectation)
ROLE_SCOPE = {"platform_admin": "platform", "auditor": "platform", "operator_admin": "operator",
              "operator_general": "operator", "ap_vendor_admin": "vendor", "ap_vendor_general": "vendor",
              "gw_vendor_admin": "vendor", "gw_vendor_general": "vendor"}


def role_table():
    """{role: {action: rule}} from docs/admin.md's "Role table" section."""
    import os
    import re
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    text = open(os.path.join(root, "docs", "admin.md"), encoding="utf-8").read()
    sec = text[text.index("## Role table"):]
    sec = sec[:sec.index("\n## ", 3)]
    rows = [ln for ln in sec.splitlines() if ln.startswith("| `")]
    head = [ln for ln in sec.splitlines() if ln.startswith("| Role")][0]
    actions = re.findall(r"`([a-z]+\.[a-z]+)`", head)
    table = {}
    for ln in rows:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        role = cells[0].strip("`")
        table[role] = dict(zip(actions, cells[1:]))
    return table


def role_allowed(rule, who, target, grants):
    """the doc's scope rule for who ({operator, vendor}) on target ({operator,
    vendor}); grants: {vendor: (operators granting it)}"""
    if rule == "platform":
        return True
    if rule == "own operator":
        return target.get("operator") is not None and target.get("operator") == who["operator"]
    if rule == "own vendor":
        return target.get("vendor") is not None and target.get("vendor") == who["vendor"]
    if rule == "granted":
        return target.get("operator") is not None and target.get("operator") in grants.get(who["vendor"], ())
    return False  # none
