#!/usr/bin/python3
"""tests/integration/test_gw_kill9.py -- durability of GW-IF over MQTT.

`suiro gwsim` publishes QoS 1 from 4 gateways while the server is kill -9'd
at random moments (>= 20 rounds) and restarted on the same port; gwsim
reconnects and sends again whatever was not acknowledged (same messageId).
Afterwards every message that received a PUBACK is in the log exactly once,
and no message is stored twice. Messages of 7 values over 5 points (gwsim
cycles through its points, one second each round) are each 3 points x 1
value at one time and 2 points x 2 values: mixed records, a Snapshot and
PointValues (codecs/events.proto). Every process is stopped by its PID.
usage: test_gw_kill9.py SUIRO_BIN [ROUNDS]"""
import collections
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srtest  # noqa: E402

BIN = sys.argv[1]
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 20
T = tempfile.mkdtemp(prefix="suiro-gwkill-")
D = os.path.join(T, "data")
ACKS = os.path.join(T, "acks.txt")
rng = random.Random(int(os.environ.get("SR_TEST_SEED", "17")))
procs = []
check = srtest.Checks()


def start_server(port):
    """The server on MQTT port `port` (the same after every restart); its
    `listening` line comes once recovery is done."""
    p, _ = srtest.start_server(BIN, D, os.path.join(T, "server.log"), mqtt_port=port)
    procs.append(p)
    return p


try:
    srtest.provision_gwsim(BIN, D, T, 4, 5)
    port = srtest.free_port()
    srv = start_server(port)
    sim = subprocess.Popen([BIN, "gwsim", "run", "--port", str(port), "--gateways", "4", "--points", "5",
                            "--batch", "7", "--messages", "1000000", "--window", "8", "--acks", ACKS,
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
        if not check("round %d: something acknowledged within 30 s of a (re)start (the gateways came back)" % r,
                     acks_now() > before):
            break
        time.sleep(rng.uniform(0.0, 0.4))
        srv.send_signal(signal.SIGKILL)
        srv.wait()
        kills += 1
        srv = start_server(port)
    time.sleep(0.5)
    srtest.stop_server(sim, 10, signal.SIGINT)
    srv.send_signal(signal.SIGTERM)
    rc = srv.wait(30)
    print("kills:", kills, "server exit after SIGTERM:", rc)
    check("the server stops cleanly on SIGTERM", rc == 0, "exit %s" % rc)

    acked = set()
    for line in open(ACKS):
        parts = line.split()
        if len(parts) == 3 and parts[0] == "ack":
            acked.add("%s-%s" % (parts[1], parts[2]))
    out = subprocess.run([BIN, "replay", D, "--kind", "measurements"], capture_output=True, text=True,
                         check=True).stdout
    stored = collections.Counter(json.loads(l)["message_id"] for l in out.splitlines() if l.strip())
    mixed = sum('"snapshot":true' in l and '"points":[' in l and l.count('"point":') > l.count('"snapshot":true')
                for l in out.splitlines())
    check("the log holds mixed records (Snapshot and PointValues): %d" % mixed, mixed >= 50, out[:300])
    missing = [m for m in acked if stored[m] != 1]
    twice = [m for m, n in stored.items() if n > 1]
    print("acknowledged:", len(acked), "stored messages:", len(stored))
    check("at least 20 kills", kills >= 20 or ROUNDS < 20, kills)
    check("enough acknowledged messages to mean anything (>= 50)", len(acked) >= 50, len(acked))
    check("every acknowledged message is stored exactly once", not missing, missing[:10])
    check("no message is stored twice", not twice, twice[:10])
    v = subprocess.run([BIN, "verify", D], capture_output=True, text=True)
    check("verify (log chain, index equals a rebuild)", v.returncode == 0, v.stdout + v.stderr)
finally:
    srtest.finish(check, T, procs)
