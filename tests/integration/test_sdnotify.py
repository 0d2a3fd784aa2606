#!/usr/bin/python3
"""tests/integration/test_sdnotify.py -- `suiro serve` speaks systemd's
notification protocol (api/sdnotify.h; the unit scripts/packaging/suiro.service is
Type=notify with WatchdogSec=): the test plays the service manager with a
unix datagram socket named by NOTIFY_SOCKET.
  - READY=1 comes once the server serves: a thread that receives it connects
    to the HTTP and the MQTT port at once (ports fixed beforehand) and is
    answered on both;
  - a server that cannot start (its port is taken) exits non-zero and sends
    no READY=1;
  - SIGTERM: STOPPING=1 comes, and the server exits 0;
  - WATCHDOG_USEC set: WATCHDOG=1 keeps coming (an abstract socket name,
    '@...', this time).
The datagram itself (paths, abstract names, errors) and WATCHDOG_USEC /
WATCHDOG_PID: tests/api/test_sdnotify.c.
usage: test_sdnotify.py SUIRO_BIN"""
import os
import socket
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srtest  # noqa: E402

BIN = os.path.abspath(sys.argv[1])
check = srtest.Checks()
T = tempfile.mkdtemp(prefix="suiro-sdnotify-")
LOG = os.path.join(T, "server.log")
procs = []


def serves(http_port, mqtt_port):
    """Both listeners answer right now: an HTTP answer, a CONNACK."""
    try:
        st, _, _, _ = srtest.http_once(http_port, "GET", "/api/v1/no-such-route", timeout=5)
        m = socket.create_connection(("127.0.0.1", mqtt_port), timeout=5)
        try:
            m.sendall(srtest.mqtt_connect("probe", "nobody/none", "x"))
            pkt = srtest.mqtt_read(m)
        finally:
            m.close()
        return st >= 200 and pkt[0] == 2
    except OSError as e:
        print("  (probe: %r)" % e)
        return False


try:
    D = os.path.join(T, "data")
    subprocess.run([BIN, "init", D], check=True, capture_output=True)

    # ---- READY=1 once it serves --------------------------------------------------
    ns = srtest.NotifySocket(os.path.join(T, "notify"))
    hp, mp = srtest.free_port(), srtest.free_port()
    got = {}

    def manager():
        lines, seen = ns.wait_for("READY=1", 30)
        got["lines"], got["seen"] = lines, seen
        # what a client sees at the moment the manager hears READY=1
        got["serves"] = lines is not None and serves(hp, mp)
    th = threading.Thread(target=manager)
    th.start()
    p, ports = srtest.start_server(BIN, D, LOG, mqtt_port=mp, http_port=hp, env=ns.env())
    procs.append(p)
    th.join(40)
    check("READY=1 is sent", got.get("lines") is not None, repr(got.get("seen")))
    check("... with a STATUS line", got.get("lines") is not None and "STATUS=serving" in got["lines"])
    check("... and nothing before it (one datagram)", len(got.get("seen") or []) == 1, repr(got.get("seen")))
    check("when READY=1 arrives, HTTP and MQTT answer at once", got.get("serves") is True)

    # ---- a server that cannot start says nothing ---------------------------------
    ns2 = srtest.NotifySocket(os.path.join(T, "notify2"))
    D2 = os.path.join(T, "data2")
    subprocess.run([BIN, "init", D2], check=True, capture_output=True)
    r = subprocess.run([BIN, "serve", "--data", D2, "--mqtt", "127.0.0.1:0", "--http", "127.0.0.1:%d" % hp],
                       env=ns2.env(), capture_output=True, text=True, timeout=60)
    early = ns2.pending()  # (it exited: whatever it sent is there)
    check("a server whose port is taken exits non-zero", r.returncode not in (0, None), r.stderr[-300:])
    check("... and sends no READY=1", early is None or "READY=1" not in early.split("\n"), repr(early))

    # ---- STOPPING=1 at SIGTERM ---------------------------------------------------
    rc = srtest.stop_server(p)
    lines, seen = ns.wait_for("STOPPING=1", 10)
    check("SIGTERM: STOPPING=1 is sent", lines is not None, repr(seen))
    check("... and the server exits 0", rc == 0, "rc=%r" % rc)

    # ---- WATCHDOG=1 while it runs (abstract socket) -------------------------------
    aname = "@suiro-sdnotify-%d" % os.getpid()
    na = srtest.NotifySocket(aname)
    p, ports = srtest.start_server(BIN, D, LOG, env=na.env(WATCHDOG_USEC="2000000"))
    procs.append(p)
    lines, seen = na.wait_for("READY=1", 20)
    check("an abstract NOTIFY_SOCKET ('@name') gets READY=1", lines is not None, repr(seen))
    w1, seen1 = na.wait_for("WATCHDOG=1", 10)
    w2, seen2 = na.wait_for("WATCHDOG=1", 10)
    check("WATCHDOG_USEC=2000000: WATCHDOG=1 comes, and again", w1 is not None and w2 is not None,
          repr(seen1 + seen2))
    srtest.stop_server(p)
    # (WATCHDOG_PID naming another process, and the parsing: tests/api/test_sdnotify.c)
except Exception as e:  # noqa: BLE001
    check.failed(e)
srtest.finish(check, T, procs)
