#!/usr/bin/python3
"""tests/integration/test_state_kill9.py -- kill -9 while state snapshots
are written and thinned leaves answers equal to the full replay's (issue
#18, R-RE-2; docs/state.md "How it is built", engine/statesnap.c).

Rounds: `suiro serve` with small snapshot intervals ([state]
snapshot_events = 40, snapshot_values = 150, snapshot_s = 1, snapshot_keep
= 3: a snapshot every few groups, thinned after each) under a continuous
`gwsim run` load, killed with SIGKILL (by PID) at a random moment of it.
Then a restart (its open recovers the log's tail) and a clean stop, and on
the stopped directory:
  1. `suiro verify` passes (the log's chain; the index equals a rebuild);
  2. `suiro state DIR --at T --json` at several T (random ingest times of
     the rounds so far, and now) equals `--no-snapshot`'s (the log's start
     replayed by the ordinary appliers) but for the members that say how it
     was built (snapshot, replayed);
  3. over the rounds, answers started from a snapshot (snapshot.seq > 0),
     and older snapshots were thinned (the answers' snapshots are not all
     those of the last rounds).
usage: test_state_kill9.py SUIRO_BIN [ROUNDS]"""
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

BIN = sys.argv[1]
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
HERE = os.path.dirname(os.path.abspath(__file__))
T = tempfile.mkdtemp(prefix="suiro-state-k9-")
D = os.path.join(T, "data")
sys.path.insert(0, HERE)
from srtest import (Checks, finish, gwsim_sheet, http_once, import_sheet, start_server, stop_server,  # noqa: E402
                    wait_until)

check = Checks()
server = load = None
rng = random.Random(int(os.environ.get("SEED", "0")) or int(time.time()))
CFG = os.path.join(T, "suiro.ini")


def serve():
    return start_server(BIN, D, os.path.join(T, "server.log"),
                        extra=["--config", CFG, "--data", D, "--mqtt", "127.0.0.1:0", "--http", "127.0.0.1:0"],
                        until="mqtt")


def state(at, *extra):
    r = subprocess.run([BIN, "state", D, "--at", str(at), "--json"] + list(extra), capture_output=True, text=True,
                       timeout=300)
    if r.returncode != 0:
        return None, r.stderr
    return json.loads(r.stdout), ""


def log_events(port):
    """suiro_log_events_total of the running server (0 when not answering)"""
    try:
        st, _, body, _ = http_once(port, "GET", "/metrics", timeout=5)
    except (OSError, http.client.HTTPException):
        return 0
    for line in (body or b"").decode(errors="replace").splitlines():
        if line.startswith("suiro_log_events_total "):
            return int(float(line.split()[1]))
    return 0


def core(ans):
    """the answer without the members that say how it was built"""
    return {k: v for k, v in ans.items() if k not in ("snapshot", "replayed")}


try:
    subprocess.run([BIN, "init", D], check=True, capture_output=True)
    import_sheet(BIN, D, os.path.join(T, "sim.csv"), gwsim_sheet(BIN, 4, 5))
    with open(CFG, "w") as f:
        f.write("[state]\nsnapshot_events = 40\nsnapshot_values = 150\nsnapshot_s = 1\nsnapshot_keep = 3\n")
    t0 = int(time.time() * 1000)
    from_snapshot = 0
    snaps_used = set()
    for rnd in range(ROUNDS):
        server, ports = serve()
        load = subprocess.Popen([BIN, "gwsim", "run", "--port", str(ports["mqtt"]), "--gateways", "4", "--points",
                                 "5", "--batch", "10", "--messages", "100000", "--seed", str(rnd + 1)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # a random moment of the load, across snapshot intervals: after at
        # least 100 events of this run (2 snapshot_events intervals: a slow,
        # loaded machine still makes snapshots before the kill), then 0-1.5 s
        check("round %d: the load reached 100 events" % rnd,
              wait_until(lambda: log_events(ports["http"]) >= 100, timeout=120, step=0.05), log_events(ports["http"]))
        time.sleep(rng.uniform(0.0, 1.5))
        server.send_signal(signal.SIGKILL)
        server.wait()
        stop_server(load, sig=signal.SIGINT)
        server, ports = serve()
        check("round %d: a clean stop after the restart" % rnd, stop_server(server) == 0)
        server = None
        v = subprocess.run([BIN, "verify", D], capture_output=True, text=True, timeout=300)
        check("round %d: verify (the log's chain, the index equals a rebuild)" % rnd, v.returncode == 0,
              v.stdout + v.stderr)
        now = int(time.time() * 1000)
        ats = sorted(rng.randint(t0, now) for _ in range(3)) + [now]
        for at in ats:
            a, err = state(at)
            r, err2 = state(at, "--no-snapshot")
            ok = a is not None and r is not None
            check("round %d: the state at %d answers, from a snapshot and by the full replay" % (rnd, at), ok,
                  err + err2)
            if not ok:
                continue
            check("round %d: the full replay starts from the log's start" % rnd,
                  r.get("snapshot", {}).get("seq") == 0, r.get("snapshot"))
            s = a.get("snapshot", {}).get("seq", 0)
            if s:
                from_snapshot += 1
                snaps_used.add(s)
            check("round %d: at %d the answer from snapshot %d equals the full replay's (seq %s)"
                  % (rnd, at, s, a.get("seq")), core(a) == core(r),
                  json.dumps(core(a))[:400] + " <> " + json.dumps(core(r))[:400])
            check("round %d: it replayed only the events after its snapshot" % rnd,
                  a.get("replayed", -1) <= a.get("seq", 0) - s and r.get("replayed") >= a.get("replayed", -1),
                  (a.get("replayed"), r.get("replayed"), s))
    check("answers started from a snapshot (%d of %d)" % (from_snapshot, 4 * ROUNDS),
          from_snapshot >= 2 * ROUNDS, from_snapshot)
    check("several snapshots were used (%d)" % len(snaps_used), len(snaps_used) >= 3, sorted(snaps_used))
except Exception as e:  # noqa: BLE001
    check.failed(e)
finish(check, T, [server, load])
