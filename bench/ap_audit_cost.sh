#!/usr/bin/env bash
# bench/ap_audit_cost.sh SUIRO -- what recording every AP-IF read in the
# audit trail costs (issue #18, api/access.h, docs/admin.md "Audit"): the
# AP-IF latest value (GET /api/v1/stored-values/latest, one data point,
# `suiro apsim load`) of ONE build served with `[audit] reads = on` (the
# default: every read an entry, batched into AccessEvents every flush_ms)
# and with `reads = off`, side by side in one run. The goal: on costs < 5 %
# of the rate.
#
#   bash bench/ap_audit_cost.sh build/suiro      (bench/run.sh calls it so)
#
# WHAT IS MEASURED (the method of bench/ap_latest_ab.sh)
#  Data: `suiro init --demo` and one value of P001 through the GW-IF HTTP
#  binding; each round serves a fresh copy of it on 127.0.0.1.
#  req/s: AB_ROUNDS rounds (default 8), on and off once a round, their
#  order alternating, each AB_SECONDS (4) of `apsim load --what latest
#  --data-id P001` with AB_CONNS (8) keep-alive connections; also the
#  server's CPU (user+system, all threads: the loop's entries, the flush,
#  the writer's AccessEvents) per answered request. Each round also checks
#  the trail: `suiro replay --kind access_batch` (and `access`, the old form)
#  counts the entries in the log
#  after the server stopped (it writes what it holds at stop); on: they
#  must equal the requests answered (apsim's login aside), off: none.
# OUTPUT: one JSON line per round and mode ({"bench":"ap_audit_cost",
#  "reads":"on|off",...}), then {"bench":"ap_audit_cost_median",...} with
#  the medians and on_vs_off (the rate ratio), cost_pct (1 - it, in %) and
#  the goal check (cost_pct < 5; on a shared machine wall-clock rates move
#  with the neighbours: look at the CPU per request and the load too).
#  The callgrind figures (below): the load PACED (`apsim load --rate
#  AB_CG_RATE`, default 200 requests a second, over 2 connections) so that
#  both modes get the same requests in the same time: what a second costs
#  (the flush tick, the writer's one batch a second) is spread over the same
#  number of requests in both, and the ratio is per request and unbiased
#  (unpaced, the two modes ran at different rates under callgrind and the
#  figure moved by about +-2 points). A run whose load did not keep the
#  rate (fewer than 97 % of the paced requests: the server under callgrind
#  fell behind) is "verify":"FAILED".
#  Every process started here is stopped by its PID.
set -euo pipefail
B0=$(readlink -f "${1:?usage: ap_audit_cost.sh SUIRO}")
ROUNDS=${AB_ROUNDS:-8}
SECS=${AB_SECONDS:-4}
CONNS=${AB_CONNS:-8}
CGSECS=${AB_CG_SECONDS:-10}
CGRATE=${AB_CG_RATE:-200}
CGRUNS=${AB_CG_RUNS:-3}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/suiro-auditcost-XXXXXX")
. "$ROOT/bench/lib.sh" # stop_pid, ap_serve, ap_load, ap_stop, ap_make_data, ap_cpu_s
SRV=
cleanup() {
  stop_pid "$SRV"
  rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
printf '[audit]\nreads = on\n' > "$T/on.ini"
: > "$T/rounds"
printf '[audit]\nreads = off\n' > "$T/off.ini"
cpu_s() { ap_cpu_s "$@"; }
# serve BIN DIR MODE [PREFIX...]: reads MODE (bench/lib.sh: one copy with ap_latest_ab.sh)
serve() { local bin=$1 dir=$2 mode=$3; shift 3; ap_serve "$bin" "$dir" "$T/$mode.ini" "$@"; }
stop() { ap_stop; }
load() { ap_load "$@"; }

# ---- the data: the demo operator and one value of P001 ------------------------
ap_make_data "$B0" "$T/d0"

# ---- 1. req/s, alternating ---------------------------------------------------
round() { # on|off
  local v=$1
  rm -rf "$T/d-$v"
  cp -a "$T/d0" "$T/d-$v"
  serve "$B0" "$T/d-$v" "$v"
  sleep 1
  local l c0 c1 out entries
  l=$(cut -d' ' -f1 /proc/loadavg)
  c0=$(cpu_s "$SRV")
  out=$(load "$B0" "$SECS" "$CONNS")
  c1=$(cpu_s "$SRV")
  stop
  # the entries the log holds (the stop wrote what was held)
  entries=$({ "$B0" replay "$T/d-$v" --kind access_batch; "$B0" replay "$T/d-$v" --kind access; } 2>/dev/null |
    "$PY" -c 'import json,sys
print(sum(len((d.get("access_batch") or d.get("access") or {}).get("entries", [])) for d in map(json.loads, filter(str.strip, sys.stdin))))')
  "$PY" -c 'import json,sys
v, l, c0, c1, o, ent = sys.argv[1:]
d = json.loads(o or "{}"); n = d.get("requests") or 0; ent = int(ent or 0)
good = n and not d.get("errors") and (abs(ent - n) <= 1 if v == "on" else ent == 0)
print(json.dumps({"bench": "ap_audit_cost", "reads": v, "req_per_s": d.get("req_per_s"), "p50_ms": d.get("p50_ms"),
  "server_cpu_us_per_req": round((float(c1) - float(c0)) * 1e6 / n, 1) if n else None, "errors": d.get("errors"),
  "requests": n, "access_entries": ent, "loadavg_1m": float(l), "connections": d.get("connections"),
  "verify": "ok" if good else "FAILED"}, separators=(",", ":")))' "$v" "$l" "$c0" "$c1" "$out" "$entries" | tee -a "$T/rounds"
}
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then round off; round on; else round on; round off; fi
done
"$PY" - "$T/rounds" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
med = {}
for b in ("on", "off"):
    x = [r for r in rows if r["reads"] == b and r["verify"] == "ok"]
    med[b] = (statistics.median(r["req_per_s"] for r in x), statistics.median(r["server_cpu_us_per_req"] for r in x)) if x else (0, 0)
ratio = round(med["on"][0] / med["off"][0], 3) if med["off"][0] else None
ok = all(r["verify"] == "ok" for r in rows)
print(json.dumps({"bench": "ap_audit_cost_median", "rounds": len(rows) // 2,
                  "off_req_per_s": med["off"][0], "on_req_per_s": med["on"][0], "on_vs_off": ratio,
                  "cost_pct": round((1 - ratio) * 100, 1) if ratio else None,
                  "goal_cost_pct_below": 5, "goal_met": bool(ratio and (1 - ratio) * 100 < 5),
                  "off_cpu_us_per_req": med["off"][1], "on_cpu_us_per_req": med["on"][1],
                  "verify": "ok" if ok else "FAILED"}, separators=(",", ":")))
EOF

# ---- instructions per request (callgrind, the noise-free figure) --------------
# The server under callgrind, collecting inside sr_apif_handle (the read),
# access_on_log (its entry, at the request's end), sr_access_flush (the
# batches) and writer_main (the writer: the AccessEvents it stores) minus
# open_session and session_close, for AB_CG_SECONDS (10) of the same load,
# paced at AB_CG_RATE over 2 connections: instructions / requests, on and off.
command -v valgrind >/dev/null || { echo "ap_audit_cost: no valgrind: no instruction counts" >&2; exit 0; }
for v in off on; do
  rm -rf "$T/c-$v"
  cp -a "$T/d0" "$T/c-$v"
  serve "$B0" "$T/c-$v" "$v" valgrind --tool=callgrind --collect-atstart=no --toggle-collect=sr_apif_handle \
    --toggle-collect=access_on_log --toggle-collect=sr_access_flush --toggle-collect=writer_main \
    --toggle-collect=open_session --toggle-collect=session_close --callgrind-out-file="$T/cg-$v.out"
  out=$(load "$B0" "$CGSECS" 2 "$CGRATE")
  stop
  "$PY" -c 'import json,re,sys
v, f, o, secs, rate = sys.argv[1:]
n = json.loads(o or "{}").get("requests") or 0
tot = int(re.search(r"^totals: *(\d+)", open(f).read(), re.M).group(1))
print(json.dumps({"bench": "ap_audit_cost_instr", "reads": v, "requests": n, "rate": float(rate), "instr": tot,
  "instr_per_req": round(tot / n, 1) if n else None,
  "collect": "sr_apif_handle + access_on_log + sr_access_flush + writer_main - open_session - session_close",
  "verify": "ok" if n >= 0.97 * float(secs) * float(rate) and tot else "FAILED"}, separators=(",", ":")))' \
    "$v" "$T/cg-$v.out" "$out" "$CGSECS" "$CGRATE" | tee -a "$T/instr"
done
"$PY" - "$T/instr" <<'EOF'
import json, sys
r = {d["reads"]: d for d in (json.loads(l) for l in open(sys.argv[1]))}
on, off = r["on"]["instr_per_req"], r["off"]["instr_per_req"]
ok = on and off and r["on"]["verify"] == "ok" and r["off"]["verify"] == "ok"
print(json.dumps({"bench": "ap_audit_cost_instr_ratio", "rate": r["on"]["rate"], "off_instr_per_req": off,
                  "on_instr_per_req": on, "cost_pct": round((on / off - 1) * 100, 1) if on and off else None,
                  "goal_cost_pct_below": 5, "goal_met": bool(on and off and (on / off - 1) * 100 < 5),
                  "verify": "ok" if ok else "FAILED"}, separators=(",", ":")))
EOF

# ---- whole-process instructions per request (callgrind, everything) ----------
# The figure issue #18 asks for: the WHOLE server's instructions (every
# thread: the loop, the login guard, the writer, the flush) per answered
# request, reads on vs off, each mode under callgrind collecting everything
# from start to stop, with three loads over 2 connections, each paced
# (the same requests in the same time in both modes):
#   A: 3 x AB_CG_SECONDS at AB_CG_RATE / 4   B: 3 x AB_CG_SECONDS at AB_CG_RATE
#   C: AB_CG_SECONDS at AB_CG_RATE
# per request = (B - A) / (requests B - A): the same time, so start-up, the
# login, the stop AND what a second costs (the flush tick, the writer's one
# batch a second) cancel out: the cost of a request itself, which is what
# bounds the latest-value rate (at the real rate, ~10 k requests a second and
# more, a second's cost spread over them is a few instructions a request).
# at_rate = (B - C) / (requests B - C): the same rate, so a second's cost is
# counted, spread over AB_CG_RATE requests: the cost at that (low) rate.
# AB_CG_RUNS (3) runs, the modes' order alternating; one line a run and
# mode, then the medians (the acceptance figure: ap_audit_cost_whole_ratio
# cost_pct, per request; at_rate_cost_pct beside it).
LORATE=$((CGRATE / 4))
for run in $(seq "$CGRUNS"); do
  if [ $((run % 2)) = 1 ]; then modes="off on"; else modes="on off"; fi
  for v in $modes; do
    for L in "A $((CGSECS * 3)) $LORATE" "B $((CGSECS * 3)) $CGRATE" "C $CGSECS $CGRATE"; do
      set -- $L
      rm -rf "$T/w-$v-$1"
      cp -a "$T/d0" "$T/w-$v-$1"
      serve "$B0" "$T/w-$v-$1" "$v" valgrind --tool=callgrind --callgrind-out-file="$T/w-$v-$1.out"
      out=$(load "$B0" "$2" 2 "$3")
      stop
      "$PY" -c 'import json,re,sys
run, v, l, secs, rate, f, o = sys.argv[1:]
n = json.loads(o or "{}").get("requests") or 0
tot = sum(int(x) for x in re.findall(r"^totals: *(\d+)", open(f).read(), re.M))
print(json.dumps({"run": int(run), "v": v, "load": l, "secs": float(secs), "rate": float(rate), "requests": n,
                  "instr": tot}))' "$run" "$v" "$1" "$2" "$3" "$T/w-$v-$1.out" "$out" >> "$T/whole"
      rm -rf "$T"/w-$v-$1.out* "$T/w-$v-$1"
    done
  done
done
"$PY" - "$T/whole" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
r = {(d["run"], d["v"], d["load"]): d for d in rows}
runs = sorted({d["run"] for d in rows})
kept = lambda d: d["requests"] >= 0.97 * d["secs"] * d["rate"]  # the load kept its pace
cost, at_cost, per, at_per, allok = [], [], {"on": [], "off": []}, {"on": [], "off": []}, True
marg = lambda x, y: round((x["instr"] - y["instr"]) / (x["requests"] - y["requests"]), 1) \
    if x["requests"] > y["requests"] else None
for run in runs:
    out = {}
    for v in ("off", "on"):
        a, b, c = r[(run, v, "A")], r[(run, v, "B")], r[(run, v, "C")]
        # per request: A and B kept their pace; at the rate: C too (the 10 s
        # load is the first to fall behind when the machine is loaded)
        out[v] = (marg(b, a) if kept(a) and kept(b) else None, marg(b, c) if kept(b) and kept(c) else None)
        ok = bool(out[v][0])
        allok &= ok
        if out[v][0]:
            per[v].append(out[v][0])
        if out[v][1]:
            at_per[v].append(out[v][1])
        print(json.dumps({"bench": "ap_audit_cost_whole", "run": run, "reads": v,
                          "loads": [[d["secs"], d["rate"], d["requests"], d["instr"]] for d in (a, b, c)],
                          "instr_per_req": out[v][0], "at_rate_instr_per_req": out[v][1], "rate": b["rate"],
                          "collect": "the whole server process, every thread (A, B, C: [s, req/s, requests, "
                                     "instructions]; per request (B-A), at the rate (B-C))",
                          "verify": "ok" if ok else "FAILED"}, separators=(",", ":")))
    if out["on"][0] and out["off"][0]:
        cost.append(round((out["on"][0] / out["off"][0] - 1) * 100, 2))
    if out["on"][1] and out["off"][1]:
        at_cost.append(round((out["on"][1] / out["off"][1] - 1) * 100, 2))
med = lambda x: round(statistics.median(x), 1) if x else None
c, ac = med(cost), med(at_cost)
print(json.dumps({"bench": "ap_audit_cost_whole_ratio", "runs": len(runs), "rate": max((d["rate"] for d in rows), default=None),
                  "off_instr_per_req": med(per["off"]), "on_instr_per_req": med(per["on"]),
                  "cost_pct": round(c, 1) if c is not None else None, "runs_cost_pct": cost,
                  "at_rate_off_instr_per_req": med(at_per["off"]), "at_rate_on_instr_per_req": med(at_per["on"]),
                  "at_rate_cost_pct": round(ac, 1) if ac is not None else None, "runs_at_rate_cost_pct": at_cost,
                  "goal_cost_pct_below": 5, "goal_met": bool(c is not None and c < 5),
                  "verify": "ok" if allok and cost else "FAILED"}, separators=(",", ":")))
EOF
