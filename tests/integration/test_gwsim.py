#!/usr/bin/python3
"""tests/integration/test_gwsim.py -- `suiro gwsim run --answer` plays a real
gateway against the real server: it answers IMMEDIATE, CONTROL (signature
passed through unchanged), PERIODIC_START/STOP (it plays GW002); it reconnects after the
server is killed (-9) and restarted, and the running monitor resumes.
usage: test_gwsim.py SUIRO_BIN"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-gwsim-")
D = os.path.join(T, "data")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srtest  # noqa: E402
from srtest import Api, Checks, code, start_server  # noqa: E402

check = Checks()
procs = []


def start(mqtt_port=0, http_port=0):
    p, ports = start_server(BIN, D, os.path.join(T, "server.log"), mqtt_port, http_port)
    procs.append(p)
    return p, ports


def wait_for(fn, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        r = fn()
        if r:
            return r
        time.sleep(0.05)
    return fn()


class App:
    """APP001 of demo, logged in (srtest.Api); call() takes paths below /api/v1."""

    def __init__(self, port):
        self.api = Api(port)
        self.api.login("APP001", "demo", "demo-app001-secret")
        self.token = self.api.token

    def call(self, method, path, body=None):
        return self.api.call(method, "/api/v1" + path, body)


try:
    subprocess.run([BIN, "init", "--demo", D], check=True, capture_output=True)
    # APP001's data-protection certificate (docs/signatures.md): its control is signed for real
    signer = srtest.Signer("APP001", 0x51)
    with open(os.path.join(T, "app001.pem"), "w") as fh:
        fh.write(signer.pem)
    subprocess.run([BIN, "cert", "import", D, "--operator", "demo", "--app", "APP001", "--pem",
                    os.path.join(T, "app001.pem")], check=True, capture_output=True)
    srv, ports = start()
    gwlog = os.path.join(T, "gwsim.err")
    gw = subprocess.Popen([BIN, "gwsim", "run", "--port", str(ports["mqtt"]), "--operator", "demo", "--gateway-id",
                           "GW002", "--secret", "demo-gw002-secret", "--messages", "0", "--answer", "--sheet", "demo",
                           "--control-fail", "P010", "--no-answer", "P009", "--duration", "120"],
                          stdout=subprocess.PIPE, stderr=open(gwlog, "w"), text=True)
    procs.append(gw)
    app = App(ports["http"])
    check("app login", app.token is not None)
    # the gateway is online once its session is up
    st, b = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(
        app.call("POST", "/current-values", {"dataIds": ["P006", "P007", "P010"], "timeoutMs": 3000})), 15) or (0, None)
    vals = {v["dataId"]: v["value"] for v in (b or {}).get("values", [])}
    check("immediate: gwsim answers with typed values for each point", st == 200 and
          isinstance(vals.get("P006"), float) and isinstance(vals.get("P007"), float) and
          isinstance(vals.get("P010"), str), (st, b))
    st, b = app.call("POST", "/current-values", {"dataIds": ["P009"], "timeoutMs": 700})
    check("immediate: --no-answer point times out (504 E4002)", st == 504 and code(b) == "E4002", (st, b))
    prot = signer.protection(b"55.5")  # the exact bytes of "value" as json.dumps writes them
    st, b = app.call("POST", "/control-values", {"dataId": "P007", "value": 55.5, "protection": prot})
    check("control: applied and read back (200, appliedValue 55.5)", st == 200 and b.get("appliedValue") == 55.5,
          (st, b))
    rid = (b or {}).get("requestId", "")
    line = wait_for(lambda: next((l for l in open(gwlog) if ("control %s protection" % rid) in l), None), 5)
    got = json.loads(line.split(" protection ", 1)[1]) if line else None
    check("control: the app's signature reaches the gateway unchanged", got == prot, (line, got))
    st, b = app.call("POST", "/control-values", {"dataId": "P010", "value": "AUTO"})
    check("control: a gateway failure is 502 E4003", st == 502 and code(b) == "E4003", (st, b))
    st, b = app.call("POST", "/monitors", {"dataIds": ["P006", "P008"], "intervalMs": 200})
    mid = (b or {}).get("monitorId")
    check("monitor: 201 STARTING", st == 201 and mid, (st, b))

    def status():
        st, b = app.call("GET", "/monitors")
        return next((m["status"] for m in b.get("items", []) if m["monitorId"] == mid), None)

    check("monitor: RUNNING once gwsim acked", wait_for(lambda: status() == "RUNNING", 10), status())

    def values_after(t):
        st, b = app.call("GET", "/monitors/%s/values?after=%s" % (mid, t))
        return [v for v in b.get("values", []) if v["dataId"] == "P006"] if st == 200 else []

    t0 = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
    check("monitor: periodic values arrive and are stored", wait_for(lambda: len(values_after(t0)) >= 3, 10))

    # kill -9 the server; restart it on the same ports: gwsim reconnects and
    # the running monitor is sent to it again
    srv.send_signal(signal.SIGKILL)
    srv.wait()
    srv, ports2 = start(ports["mqtt"], ports["http"])
    app = App(ports["http"])
    check("after kill -9 and restart the monitor is still RUNNING", status() == "RUNNING", status())
    t1 = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time()))
    check("... gwsim reconnected, got PERIODIC_START again, and values flow again",
          wait_for(lambda: len(values_after(t1)) >= 3, 15), values_after(t1))
    st, b = app.call("DELETE", "/monitors/" + mid)
    check("monitor: stop gives 202 STOPPING", st == 202 and b.get("status") == "STOPPING", (st, b))
    check("monitor: STOPPED once gwsim acked", wait_for(lambda: status() == "STOPPED", 10), status())
    gw.send_signal(signal.SIGTERM)
    out, _ = gw.communicate(timeout=20)
    summary = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    check("gwsim exits 0 on SIGTERM with a summary of what it answered",
          gw.returncode == 0 and summary.get("answered", 0) >= 4 and summary.get("periodic", 0) >= 3, (gw.returncode, out))
    srv.send_signal(signal.SIGTERM)
    check("the server stops cleanly", srv.wait(20) == 0)
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    if check.fails:
        for f in ("server.log", "gwsim.err"):
            try:
                print("----", f)
                print(open(os.path.join(T, f)).read()[-2500:])
            except OSError:
                pass
    shutil.rmtree(T, ignore_errors=True)

sys.exit(check.summary())
