#!/usr/bin/python3
"""tests/integration/test_gw_backpressure.py -- back-pressure of GW-IF over MQTT.

The engine's writer is slowed artificially (SUIRO_TEST_WRITER_DELAY_MS) and
its queue made small, while gwsim pushes as hard as its window allows. The
server must keep its memory bounded (it stops reading sockets instead of
buffering), acknowledge nothing early (the server is kill -9'd at the end,
with no clean shutdown, and every acknowledged message must be in the log),
and lose nothing. usage: test_gw_backpressure.py SUIRO_BIN"""
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

BIN = sys.argv[1]
MSGS = 1000  # per gateway, 200 values each: ~60 MB of JSON in all
T = tempfile.mkdtemp(prefix="suiro-bp-")
D = os.path.join(T, "data")
ACKS = os.path.join(T, "acks.txt")
passes = fails = 0
procs = []


def check(name, cond, extra=""):
    global passes, fails
    if cond:
        passes += 1
        print("ok:", name)
    else:
        fails += 1
        print("FAIL:", name, extra)


def rss_kb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


try:
    subprocess.run([BIN, "init", D], check=True, capture_output=True)
    sheet = subprocess.run([BIN, "gwsim", "sheet", "--gateways", "4", "--points", "10"], check=True,
                           capture_output=True).stdout
    open(f"{T}/sim.csv", "wb").write(sheet)
    subprocess.run([BIN, "sheet", "import", f"{T}/sim.csv", D], check=True, capture_output=True)
    cfg = f"{T}/suiro.ini"
    open(cfg, "w").write(f"[engine]\ndata_dir = {D}\nqueue_max = 16\n[mqtt]\nlisten = 127.0.0.1:0\ninflight_max = 4\n[http]\nlisten = 127.0.0.1:0\n")
    env = dict(os.environ, SUIRO_TEST_WRITER_DELAY_MS="10")
    srv = subprocess.Popen([BIN, "serve", "--config", cfg], stdout=subprocess.PIPE, env=env,
                           stderr=open(f"{T}/server.log", "w"), text=True)
    procs.append(srv)
    port = int(srv.stdout.readline().strip().rsplit(":", 1)[1])
    sim = subprocess.Popen([BIN, "gwsim", "run", "--port", str(port), "--gateways", "4", "--points", "10",
                            "--batch", "200", "--messages", str(MSGS), "--window", "64", "--acks", ACKS],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    procs.append(sim)
    # the baseline is taken once the 4 logins are done: each scrypt check uses
    # 16 MB on a thread-pool thread, which the allocator may keep
    time.sleep(1.5)
    base = rss_kb(srv.pid)
    peak = base
    while sim.poll() is None:
        peak = max(peak, rss_kb(srv.pid))
        time.sleep(0.1)
    summary = json.loads(sim.stdout.read().strip().splitlines()[-1])
    print("gwsim:", summary, "server RSS base %d kB, peak %d kB" % (base, peak))
    check("every message was acknowledged in the end (nothing lost)", summary["acked"] == 4 * MSGS and
          summary["errors"] == 0, summary)
    # a server that buffered what gwsim offers would grow by ~60 MB
    check("server memory stays bounded under a slow writer (< 24 MB growth while ~60 MB were offered)",
          peak - base < 24576, (base, peak))
    srv.send_signal(signal.SIGKILL)
    srv.wait()
    acked = set()
    for line in open(ACKS):
        p = line.split()
        acked.add("%s-%s" % (p[1], p[2]))
    out = subprocess.run([BIN, "replay", D, "--kind", "measurements"], capture_output=True, text=True).stdout
    stored = collections.Counter(json.loads(l)["message_id"] for l in out.splitlines() if l.strip())
    missing = [m for m in acked if stored[m] != 1]
    check("nothing was acknowledged early: every acked message survives kill -9", not missing and len(acked) == 4 * MSGS,
          (len(acked), missing[:5]))
    log = open(f"{T}/server.log").read()
    check("the server logged no errors", "level=error" not in log)
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    shutil.rmtree(T, ignore_errors=True)

print("%d passed, %d failed" % (passes, fails))
sys.exit(1 if fails else 0)
