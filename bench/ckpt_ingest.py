#!/usr/bin/python3
"""bench/ckpt_ingest.py BUILD -- what the Merkle tree and the signed
checkpoints cost network ingest (issue #18: "a checkpoint and the tree
maintenance cost < 3 % of network ingest, measured in make bench in the same
run"; docs/audit.md "Checkpoints and proofs", "Cost").

The load: bench/shape_ingest (BUILD/bench/shape_ingest), the gateway shape
("snapshot": each MQTT QoS 1 message one gateway's CK_PER points x 1 value
at one timestamp, a gateway's cycle), CK_POINTS points x CK_SECONDS s,
over MQTT to `suiro serve` on a fresh copy of one data directory (init +
the set-up sheet once). Two modes of one build:
  on   no [checkpoint] section: the default period (a signed checkpoint
       every 10 s while anything is written, and one at the stop);
  off  [checkpoint] interval_s = 0: no checkpoint.
The Merkle tree is kept in both (it is part of the index), so "off" is the
ingest without checkpoints; the tree's own cost is in the instruction counts
of docs/audit.md (callgrind), not here.
Rounds: CK_ROUNDS pairs, interleaved ABAB (on, off, off, on, on, off, ...: the
order alternates so that neither mode always runs first), each round a
fresh server; a round lasts long enough for the default period to fire
(the values are sized so: at ~0.5 M values/s, 5 M values is ~10 s; the
line says how many checkpoints each "on" round made).

Prints one JSON line per round ({"bench":"ckpt_ingest_round","mode":..,
"values_per_s":..,"server_cpu_us_per_value":..,"checkpoints":..,
"verify":..}) and then
  {"bench":"ckpt_ingest","rounds":N,"shape":"snapshot","values":..,
   "on_values_per_s":..,"off_values_per_s":.. (medians),"ratio":on/off,
   "cost_pct":(1-ratio)*100,"pair_cost_pct":[..] (each pair's),
   "on_cpu_us_per_value":..,"off_cpu_us_per_value":..,"cpu_cost_pct":..,
   "checkpoints_min":..,"goal_cost_pct_below":3,"goal_met":..,
   "verify":"ok"|"FAILED"}
verify: every value acknowledged in every round (the generator counts the
PUBACKs), every "on" round made at least one checkpoint and no "off" round
made one (counted by `suiro replay --kind checkpoint` after the stop). The
rates are reported, never asserted. Every server is stopped by its PID.
Environment: CK_ROUNDS [3], CK_POINTS [2000], CK_PER [100], CK_SECONDS
[2500], CK_WINDOW [16].
"""
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
BIN = os.path.join(BUILD, "suiro")
GEN = os.path.join(BUILD, "bench", "shape_ingest")
ROUNDS = int(os.environ.get("CK_ROUNDS", "3"))
POINTS = int(os.environ.get("CK_POINTS", "2000"))
PER = int(os.environ.get("CK_PER", "100"))
SECONDS = int(os.environ.get("CK_SECONDS", "2500"))
WINDOW = int(os.environ.get("CK_WINDOW", "16"))
OP = "sim"
GWS = (POINTS + PER - 1) // PER


def sheet():
    out = ["#suiro-setup-sheet v1\n\n[operator]\nid,name\n%s,Simulated operator\n\n[gateways]\nid,name,secret" % OP]
    out += ["SIM%04d,Simulated gateway %d,sim-secret-SIM%04d" % (k, k, k) for k in range(1, GWS + 1)]
    out.append("\n[facilities]\nid,name\nSF1,Simulated plant\n\n[equipment]\nid,facility,name\nSE1,SF1,Simulated "
               "equipment\n\n[devices]\nid,equipment,gateway,name")
    out += ["SD%04d,SE1,SIM%04d,Simulated device %d" % (k, k, k) for k in range(1, GWS + 1)]
    out.append("\n[datapoints]\nid,device,name,type,unit,min,max,kind")
    out += ["SP%04d_%03d,SD%04d,Point %d of %d,number,m3/h,-1000000,1000000,measure" % (k, j, k, j, k)
            for k in range(1, GWS + 1) for j in range(1, PER + 1)]
    return "\n".join(out) + "\n"


def serve(t, d, mode):
    cfg = os.path.join(t, mode + ".ini")
    with open(cfg, "w") as f:
        f.write("" if mode == "on" else "[checkpoint]\ninterval_s = 0\n")
    srv = subprocess.Popen([BIN, "serve", "--config", cfg, "--data", d, "--mqtt", "127.0.0.1:0", "--http",
                            "127.0.0.1:0", "--key-file", os.path.join(t, "log.key")], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    port = None
    deadline = time.monotonic() + 120
    for line in srv.stdout:  # until it listens (bounded: the server prints or exits)
        if line.startswith("listening mqtt="):
            port = int(line.strip().rsplit(":", 1)[1])
        if line.startswith("listening http=") or time.monotonic() > deadline:
            break
    return srv, port


def stop(srv):
    srv.send_signal(signal.SIGTERM)
    try:
        srv.wait(120)
    except subprocess.TimeoutExpired:
        srv.kill()
        srv.wait()


def one(t, mode, k):
    d = os.path.join(t, "d-%s-%d" % (mode, k))
    shutil.copytree(os.path.join(t, "template"), d, symlinks=True)
    srv, port = serve(t, d, mode)
    g = {}
    try:
        if port:
            r = subprocess.run([GEN, "--shape", "snapshot", "--points", str(POINTS), "--seconds", str(SECONDS),
                                "--per", str(PER), "--seed", "42", "--operator", OP, "--mqtt",
                                "127.0.0.1:%d" % port, "--window", str(WINDOW), "--server-pid", str(srv.pid),
                                "--system", "suiro_mqtt"], capture_output=True, text=True, timeout=1800)
            lines = r.stdout.strip().splitlines()
            g = json.loads(lines[-1]) if lines else {}
            if r.returncode:
                sys.stderr.write("ckpt_ingest: generator rc=%d: %s\n" % (r.returncode, r.stderr[-300:]))
    finally:
        stop(srv)
    rp = subprocess.run([BIN, "replay", d, "--kind", "checkpoint", "--key-file", os.path.join(t, "log.key")],
                        capture_output=True, text=True)
    nck = sum(1 for ln in rp.stdout.splitlines() if ln.strip())
    shutil.rmtree(d, ignore_errors=True)
    values = POINTS * SECONDS
    ok = g.get("values_acked") == values and not g.get("errors") and rp.returncode == 0
    ok = ok and (nck >= 1 if mode == "on" else nck == 0)
    row = {"bench": "ckpt_ingest_round", "round": k, "mode": mode, "values": values,
           "values_per_s": g.get("points_per_s"), "secs": g.get("secs"),
           "server_cpu_us_per_value": round(g["server_cpu_s"] * 1e6 / g["values_acked"], 3)
           if g.get("server_cpu_s") and g.get("values_acked") else None,
           "server_runq_wait_s": g.get("server_runq_wait_s"), "checkpoints": nck, "verify": "ok" if ok else "FAILED"}
    print(json.dumps(row, separators=(",", ":")), flush=True)
    return row


def main():
    for p in (BIN, GEN):
        if not os.access(p, os.X_OK):
            sys.stderr.write("ckpt_ingest: no %s (build with -DSR_BUILD_BENCH=ON)\n" % p)
            return 1
    t = tempfile.mkdtemp(prefix="suiro-ckbench-", dir=os.environ.get("TMPDIR", "/var/tmp"))
    try:
        with open(os.path.join(t, "log.key"), "w") as f:
            os.chmod(f.name, 0o600)
            f.write(os.urandom(32).hex() + "\n")
        with open(os.path.join(t, "sheet.csv"), "w") as f:
            f.write(sheet())
        key = ["--key-file", os.path.join(t, "log.key")]
        subprocess.run([BIN, "init", os.path.join(t, "template")] + key, check=True, capture_output=True)
        subprocess.run([BIN, "sheet", "import", os.path.join(t, "sheet.csv"), os.path.join(t, "template")] + key,
                       check=True, capture_output=True)
        rows = []
        for k in range(ROUNDS):  # ABAB with the order alternating: on off, off on, on off, ...
            for mode in (("on", "off") if k % 2 == 0 else ("off", "on")):
                rows.append(one(t, mode, k))
        ok = all(r["verify"] == "ok" for r in rows)

        def med(mode, f):
            x = [r[f] for r in rows if r["mode"] == mode and r["verify"] == "ok" and r[f]]
            return statistics.median(x) if x else None

        on, off = med("on", "values_per_s"), med("off", "values_per_s")
        con, coff = med("on", "server_cpu_us_per_value"), med("off", "server_cpu_us_per_value")
        pairs = []
        for k in range(ROUNDS):
            a = [r for r in rows if r["round"] == k and r["verify"] == "ok" and r["values_per_s"]]
            if len(a) == 2:
                ron = [r for r in a if r["mode"] == "on"][0]["values_per_s"]
                roff = [r for r in a if r["mode"] == "off"][0]["values_per_s"]
                pairs.append(round((1 - ron / roff) * 100, 2))
        ratio = on / off if on and off else None
        cost = round((1 - ratio) * 100, 2) if ratio else None
        print(json.dumps({"bench": "ckpt_ingest", "rounds": ROUNDS, "shape": "snapshot", "protocol": "mqtt",
                          "points": POINTS, "per": PER, "values": POINTS * SECONDS,
                          "on_values_per_s": round(on) if on else None, "off_values_per_s": round(off) if off else None,
                          "ratio": round(ratio, 4) if ratio else None, "cost_pct": cost, "pair_cost_pct": pairs,
                          "on_cpu_us_per_value": con, "off_cpu_us_per_value": coff,
                          "cpu_cost_pct": round((con / coff - 1) * 100, 2) if con and coff else None,
                          "checkpoints_min": min((r["checkpoints"] for r in rows if r["mode"] == "on"), default=0),
                          "goal_cost_pct_below": 3, "goal_met": bool(cost is not None and cost < 3),
                          "verify": "ok" if ok else "FAILED"}, separators=(",", ":")), flush=True)
        return 0 if ok else 1
    finally:
        shutil.rmtree(t, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
