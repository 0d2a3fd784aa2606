#!/usr/bin/env python3
"""bench/sealed_index.py BUILD [--pairs N] -- the sealed index's cost, side by side
in one run (issue #16: "ingest, latest, raw range and downsampling with an
encrypted index ... against the current plain index. Goal: within 10 %").

Runs the engine's own benchmarks in interleaved pairs, plain index first, then
sealed (the machine's drift hits both alike), N pairs (default 3):
  plain   --enc 2: one key seals the log (no keyring); the index is plain,
          as before issue #16 (layout 6's bytes)
  sealed  --enc 1: per-operator data keys (a keyring); every value of the
          index is sealed (layout 8, engine/ixseal.h)
Both encrypt the log, so the difference is the index's sealing (and, for
ingest, the log's per-record key choice): that is the cost docs/keys.md
states. engine_ingest (the series shape and the snapshot shape) and
engine_query (latest, raw range, downsampling one day to 1 min) each verify
what they measured.

Prints one JSON line per figure, the median of each side over the pairs:
  {"bench":"sealed_ratio","source":"wall","what":..,"figure":..,"plain":..,
   "sealed":..,"sealed_over_plain":..,"cost_pct":..,"goal_pct":10,"met":..,
   "pairs":N,"runs_plain":[..],"runs_sealed":[..],"verify":"ok"|"FAILED"}
sealed_over_plain is a ratio of times (for a rate, plain / sealed), so above
1 the sealed index is slower; cost_pct = (sealed_over_plain - 1) x 100; met:
cost_pct <= 10. "verify" is ok when every run of both sides verified.
bench/callgrind.sh gives the same figures as instruction counts (the stable
ones on a noisy machine).
"""
import json
import os
import statistics
import subprocess
import sys

# (what, program, arguments, figure field, "rate" or "time", figure's words)
INGEST = ["--threads", "1", "--points", "10000", "--seconds", "600"]
QUERY = ["--points", "20", "--seconds", "172800", "--lookups", "200000", "--ranges", "40", "--downsamples", "200"]
FIGS = [
    ("ingest_point", "engine_ingest", INGEST, "points_per_s", "rate", "values/s, series shape"),
    ("ingest_snapshot", "engine_ingest", INGEST + ["--shape", "snapshot"], "points_per_s", "rate",
     "values/s, snapshot shape"),
    ("latest", "engine_query", QUERY, "latest_p50_us", "time", "latest lookup p50 µs"),
    ("latest_rate", "engine_query", QUERY, "latest_per_s", "rate",
     "latest lookups/s (finer than a p50 of 0.2 µs in steps of 0.01)"),
    ("raw_point", "engine_query", QUERY, "range_pts_per_s", "rate", "raw range samples/s"),
    ("downsample_1d", "engine_query", QUERY, "downsample_p50_us", "time", "downsample 1 day to 1 min p50 µs"),
]


def run(build, prog, args, enc):
    cmd = [os.path.join(build, "bench", prog)] + args + ["--enc", str(enc)]
    print("sealed_index: " + " ".join(cmd), file=sys.stderr)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    last = [l for l in p.stdout.splitlines() if l.startswith("{")]
    d = json.loads(last[-1]) if last else {}
    d["_ok"] = p.returncode == 0 and d.get("verify") == "ok"
    return d


def main(argv):
    build, pairs = "build", 5
    i = 0
    while i < len(argv):
        if argv[i] == "--pairs" and i + 1 < len(argv):
            pairs = int(argv[i + 1])
            i += 2
        else:
            build = argv[i]
            i += 1
    # one run of each program per side and pair; every figure of engine_query from the same run
    progs = {}
    for what, prog, args, *_ in FIGS:
        progs.setdefault((prog, tuple(args)), []).append(what)
    res = {(k, side): [] for k in progs for side in ("plain", "sealed")}
    for _ in range(pairs):
        for k in progs:
            for side, enc in (("plain", 2), ("sealed", 1)):
                res[(k, side)].append(run(build, k[0], list(k[1]), enc))
    failed = False
    for what, prog, args, field, kind, words in FIGS:
        k = (prog, tuple(args))
        rp, rs = res[(k, "plain")], res[(k, "sealed")]
        vp = [d.get(field) for d in rp]
        vs = [d.get(field) for d in rs]
        ok = all(d["_ok"] for d in rp + rs) and all(isinstance(v, (int, float)) and v > 0 for v in vp + vs)
        line = {"bench": "sealed_ratio", "source": "wall", "what": what, "figure": words, "field": field}
        if ok:
            mp, ms = statistics.median(vp), statistics.median(vs)
            r = ms / mp if kind == "time" else mp / ms
            line.update(plain=mp, sealed=ms, sealed_over_plain=round(r, 4), cost_pct=round((r - 1) * 100, 1),
                        goal_pct=10, met=(r - 1) * 100 <= 10)
        else:
            failed = True
            line.update(plain=None, sealed=None, sealed_over_plain=None, cost_pct=None, goal_pct=10, met=None)
        line.update(pairs=pairs, runs_plain=vp, runs_sealed=vs, verify="ok" if ok else "FAILED")
        print(json.dumps(line, separators=(",", ":")), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
