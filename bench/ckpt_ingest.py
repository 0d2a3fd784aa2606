#!/usr/bin/python3
"""bench/ckpt_ingest.py BUILD -- the cost of the Merkle tree and the signed
checkpoints (issue #18, docs/audit.md "Checkpoints and proofs") on network
ingest: `suiro serve` with [checkpoint] interval_s = 10 (the default) and
interval_s = 1 (a checkpoint every second while written: the cost is not
hidden by a long interval) against interval_s = 0 (no checkpoints; the tree
is kept either way, it is part of the index), under the same `suiro gwsim
run` load over MQTT (QoS 1), in interleaved rounds (off, 10 s, 1 s) in the
same run; the medians and their ratios.

Prints one JSON line:
  {"bench":"ckpt_ingest","pairs":N,"gateways":..,"values":..,
   "off_values_per_s":..,"on_values_per_s":..(1 s),"ratio":on/off,"cost_pct":..,
   "default_values_per_s":..(10 s),"default_ratio":..,"default_cost_pct":..,
   "checkpoints":..(made in the last 1 s run),"default_checkpoints":..,
   "verify":"ok"|"FAILED"}
verify: every value acknowledged in every run, and the "on" runs made at
least one checkpoint (the stop's at least; counted by `suiro replay`).
Never a time assertion.
Environment: CK_PAIRS [3], CK_GW [20], CK_MSGS [100] (messages of 100 values
per gateway). Every server is stopped by its PID.
"""
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
BIN = os.path.join(os.path.abspath(BUILD), "suiro")
PAIRS = int(os.environ.get("CK_PAIRS", "3"))
GW = int(os.environ.get("CK_GW", "20"))
MSGS = int(os.environ.get("CK_MSGS", "100"))
POINTS, BATCH = 10, 100


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def one(t, interval):
    d = os.path.join(t, "d%d-%d" % (interval, time.monotonic_ns()))
    subprocess.run([BIN, "init", d], check=True, capture_output=True)
    sheet = subprocess.run([BIN, "gwsim", "sheet", "--gateways", str(GW), "--points", str(POINTS)], check=True,
                           capture_output=True, text=True).stdout
    sp = os.path.join(t, "sim.csv")
    with open(sp, "w") as f:
        f.write(sheet)
    subprocess.run([BIN, "sheet", "import", sp, d], check=True, capture_output=True)
    cfg = os.path.join(t, "ck.ini")
    with open(cfg, "w") as f:
        f.write("[checkpoint]\ninterval_s = %d\n" % interval)
    mport = free_port()
    srv = subprocess.Popen([BIN, "serve", "--config", cfg, "--data", d, "--mqtt", "127.0.0.1:%d" % mport, "--http",
                            "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in srv.stdout:  # until it listens
            if line.startswith("listening mqtt="):
                break
        r = subprocess.run([BIN, "gwsim", "run", "--port", str(mport), "--gateways", str(GW), "--points", str(POINTS),
                            "--batch", str(BATCH), "--messages", str(MSGS)], capture_output=True, text=True,
                           timeout=600)
        g = json.loads(r.stdout.strip().splitlines()[-1])
    finally:
        srv.send_signal(signal.SIGTERM)
        try:
            srv.wait(60)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()
    rp = subprocess.run([BIN, "replay", d], capture_output=True, text=True)
    nck = sum(1 for ln in rp.stdout.splitlines() if '"checkpoint"' in ln)
    shutil.rmtree(d, ignore_errors=True)
    return g, nck


def main():
    t = tempfile.mkdtemp(prefix="suiro-ckbench-")
    try:
        rates, ok, last_ck = {0: [], 10: [], 1: []}, True, {0: 0, 10: 0, 1: 0}
        for _ in range(PAIRS):
            for interval in (0, 10, 1):
                g, nck = one(t, interval)
                ok &= g.get("values_acked") == GW * MSGS * BATCH and g.get("errors") == 0
                ok &= nck >= 1 if interval else nck == 0
                last_ck[interval] = nck
                rates[interval].append(g["values_acked"] / g["secs"] if g.get("secs") else 0)
        mo, mn, md = (statistics.median(rates[i]) for i in (0, 1, 10))
        ratio = mn / mo if mo else 0
        dratio = md / mo if mo else 0
        print(json.dumps({"bench": "ckpt_ingest", "pairs": PAIRS, "gateways": GW, "values": GW * MSGS * BATCH,
                          "off_values_per_s": round(mo), "on_values_per_s": round(mn), "ratio": round(ratio, 4),
                          "cost_pct": round((1 - ratio) * 100, 2), "default_values_per_s": round(md),
                          "default_ratio": round(dratio, 4), "default_cost_pct": round((1 - dratio) * 100, 2),
                          "checkpoints": last_ck[1], "default_checkpoints": last_ck[10],
                          "verify": "ok" if ok else "FAILED"}))
        return 0 if ok else 1
    finally:
        shutil.rmtree(t, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
