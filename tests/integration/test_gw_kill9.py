#!/usr/bin/python3
"""tests/integration/test_gw_kill9.py -- durability of GW-IF over MQTT.

`suiro gwsim` publishes QoS 1 from 4 gateways while the server is kill -9'd
at random moments (>= 20 rounds) and restarted on the same port; gwsim
reconnects and sends again whatever was not acknowledged (same messageId).
Afterwards every message that received a PUBACK is in the log exactly once,
and no message is stored twice. Every process is stopped by its PID.
usage: test_gw_kill9.py SUIRO_BIN [ROUNDS]"""
import collections
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BIN = sys.argv[1]
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 20
T = tempfile.mkdtemp(prefix="suiro-gwkill-")
D = os.path.join(T, "data")
ACKS = os.path.join(T, "acks.txt")
rng = random.Random(int(os.environ.get("SR_TEST_SEED", "17")))
procs = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_server(port):
    p = subprocess.Popen([BIN, "serve", "--data", D, "--mqtt", "127.0.0.1:%d" % port, "--http", "127.0.0.1:0"], stdout=subprocess.PIPE,
                         stderr=open(os.path.join(T, "server.log"), "a"), text=True)
    procs.append(p)
    line = p.stdout.readline()  # "listening ..." once bound (recovery done)
    if not line.startswith("listening"):
        raise RuntimeError("server did not start: " + line)
    return p


fails = 0
try:
    subprocess.run([BIN, "init", D], check=True, capture_output=True)
    sheet = subprocess.run([BIN, "gwsim", "sheet", "--gateways", "4", "--points", "5"], check=True,
                           capture_output=True).stdout
    open(os.path.join(T, "sim.csv"), "wb").write(sheet)
    subprocess.run([BIN, "sheet", "import", os.path.join(T, "sim.csv"), D], check=True, capture_output=True)
    port = free_port()
    srv = start_server(port)
    sim = subprocess.Popen([BIN, "gwsim", "run", "--port", str(port), "--gateways", "4", "--points", "5",
                            "--batch", "20", "--messages", "1000000", "--window", "8", "--acks", ACKS,
                            "--duration", "3600"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    procs.append(sim)
    kills = 0

    def acks_now():
        try:
            with open(ACKS) as f:
                return sum(1 for l in f if l.startswith("ack "))
        except FileNotFoundError:
            return 0

    for r in range(ROUNDS):
        # kill only once this server has acknowledged something (the
        # gateways log in again after each kill: scrypt, slow on a busy
        # machine), then at a random moment of the load
        before, deadline = acks_now(), time.time() + 30
        while acks_now() <= before and time.time() < deadline:
            time.sleep(0.02)
        if acks_now() <= before:
            fails += 1
            print("FAIL: round %d: nothing acknowledged within 30 s of a restart (the gateways did not come back)" % r)
            break
        time.sleep(rng.uniform(0.0, 0.4))
        srv.send_signal(signal.SIGKILL)
        srv.wait()
        kills += 1
        srv = start_server(port)
    time.sleep(0.5)
    sim.send_signal(signal.SIGINT)
    try:
        sim.wait(10)
    except subprocess.TimeoutExpired:
        sim.kill()
        sim.wait()
    srv.send_signal(signal.SIGTERM)
    rc = srv.wait(30)
    print("kills:", kills, "server exit after SIGTERM:", rc)
    if rc != 0:
        fails += 1
        print("FAIL: the server did not stop cleanly on SIGTERM (exit %s)" % rc)

    acked = set()
    for line in open(ACKS):
        parts = line.split()
        if len(parts) == 3 and parts[0] == "ack":
            acked.add("%s-%s" % (parts[1], parts[2]))
    out = subprocess.run([BIN, "replay", D, "--kind", "measurements"], capture_output=True, text=True,
                         check=True).stdout
    stored = collections.Counter(json.loads(l)["message_id"] for l in out.splitlines() if l.strip())
    missing = [m for m in acked if stored[m] != 1]
    twice = [m for m, n in stored.items() if n > 1]
    print("acknowledged:", len(acked), "stored messages:", len(stored))
    if kills < 20 and ROUNDS >= 20:
        fails += 1
        print("FAIL: fewer than 20 kills")
    if len(acked) < 50:
        fails += 1
        print("FAIL: too few acknowledged messages to mean anything:", len(acked))
    if missing:
        fails += 1
        print("FAIL: acknowledged but not stored exactly once:", missing[:10])
    else:
        print("ok: every acknowledged message is stored exactly once")
    if twice:
        fails += 1
        print("FAIL: stored more than once:", twice[:10])
    else:
        print("ok: no message is stored twice")
    v = subprocess.run([BIN, "verify", D], capture_output=True, text=True)
    if v.returncode != 0:
        fails += 1
        print("FAIL: verify:", v.stdout, v.stderr)
    else:
        print("ok: verify (log chain, index equals a rebuild)")
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    if fails:
        print(open(os.path.join(T, "server.log")).read()[-4000:])
    shutil.rmtree(T, ignore_errors=True)

print("%d passed, %d failed" % (5 - fails if fails <= 5 else 0, fails))
sys.exit(1 if fails else 0)
