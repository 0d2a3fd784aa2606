#!/usr/bin/python3
"""tests/integration/test_audit_verify_kill9.py -- kill -9 during
checkpointing leaves a log that `suiro audit verify` passes (issue #18,
docs/audit.md "Checking a whole directory").

Rounds: `suiro serve` with [checkpoint] interval_s = 1 under a continuous
`gwsim run` load (a checkpoint signed and submitted every second while the
writer appends), killed with SIGKILL (by PID) at a random moment of the
load. Then:
  1. `suiro audit verify` on the killed directory: every checkpoint the
     index holds is one of the log (exit 0), or all holds but a torn tail
     (exit 3, saying so): never a broken record (1);
  2. a restart (its open catches the tree up and cuts a torn tail) and a
     clean stop (a "stop" checkpoint): exit 0, with more checkpoints than
     before the round.
usage: test_audit_verify_kill9.py SUIRO_BIN [ROUNDS]"""
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

BIN = sys.argv[1]
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 6
HERE = os.path.dirname(os.path.abspath(__file__))
T = tempfile.mkdtemp(prefix="suiro-averify-k9-")
D = os.path.join(T, "data")
sys.path.insert(0, HERE)
from srtest import Checks, finish, gwsim_sheet, import_sheet, start_server, stop_server, wait_until  # noqa: E402

check = Checks()
server = load = None
rng = random.Random(int(os.environ.get("SEED", "0")) or int(time.time()))
CFG = os.path.join(T, "suiro.ini")


def averify():
    r = subprocess.run([BIN, "audit", "verify", D, "--json"], capture_output=True, text=True, timeout=120)
    try:
        j = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        j = {}
    return r.returncode, j, r.stderr


def serve():
    return start_server(BIN, D, os.path.join(T, "server.log"),
                        extra=["--config", CFG, "--data", D, "--mqtt", "127.0.0.1:0", "--http", "127.0.0.1:0"],
                        until="mqtt")


try:
    subprocess.run([BIN, "init", D], check=True, capture_output=True)
    import_sheet(BIN, D, os.path.join(T, "sim.csv"), gwsim_sheet(BIN, 4, 5))
    with open(CFG, "w") as f:
        f.write("[checkpoint]\ninterval_s = 1\n")
    before = 0
    for rnd in range(ROUNDS):
        server, ports = serve()
        load = subprocess.Popen([BIN, "gwsim", "run", "--port", str(ports["mqtt"]), "--gateways", "4", "--points",
                                 "5", "--batch", "10", "--messages", "100000", "--seed", str(rnd + 1)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # a random moment of the load, across at least one checkpoint interval
        time.sleep(rng.uniform(0.8, 3.0))
        server.send_signal(signal.SIGKILL)
        server.wait()
        stop_server(load, sig=signal.SIGINT)
        rc, j, err = averify()
        check("round %d: the killed directory verifies (0, or 3 for a torn tail only)" % rnd,
              rc == 0 and j.get("verdict") == "ok" or rc == 3 and j.get("verdict") == "torn-tail", (rc, j, err))
        server, ports = serve()
        check("round %d: a clean stop" % rnd, stop_server(server) == 0)
        rc, j, err = averify()
        n = j.get("checkpoints_checked", 0)
        check("round %d: after a restart and a stop it verifies, with more checkpoints (%d > %d)" % (rnd, n, before),
              rc == 0 and j.get("verdict") == "ok" and n == j.get("checkpoints") and n > before, (rc, j, err))
        before = n
except Exception as e:  # noqa: BLE001
    check.failed(e)
finish(check, T, [server, load])
