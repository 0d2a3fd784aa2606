#!/usr/bin/env bash
# bench/ap_audit_window.sh SUIRO -- the cost of auditing AP-IF reads (issue
# #18, R-SE-5; docs/audit.md "Session 15 (perf18)") by the marginal method of
# bench/ap_audit_cost.sh's whole-process figure, with the server's counters
# limited to the load's window: the WHOLE server under callgrind (every
# thread), `callgrind_control -z` right before each paced load and `-d`
# right after it, so the start-up, the stop and the time the server waits
# for its load under a loaded machine are not counted (the unpaced part of
# ap_audit_cost.sh's figure, which moved it when its loads could not keep
# their pace). A warm-up load of 1 s first (the app's session). Two loads a
# mode, each on a fresh server: A, AW_SECS (30) at AW_RATE / 4; B, AW_SECS
# at AW_RATE (default 40 requests a second over 2 connections: what a
# server under callgrind keeps on a machine at load ~25); per request =
# (B - A) / (requests B - A): the same time, so what a second costs cancels.
# AW_RUNS (2) runs, the modes' order alternating. A load that did not keep
# its pace (fewer than 97 % of its requests: the server under callgrind fell
# behind) makes its run not count: its marginal would hold the waiting's
# costs, not the requests'.
#
#   bash bench/ap_audit_window.sh build/suiro
#
# Output: one JSON line per load, then {"bench":"ap_audit_window_ratio",...}
# with each run's per-request figures and cost_pct (on / off - 1, in %), the
# goal (< 5 %). Correctness is not checked here (ap_audit_cost.sh's rounds
# count the entries); every process is stopped by its PID.
set -euo pipefail
B0=$(readlink -f "${1:?usage: ap_audit_window.sh SUIRO}")
RUNS=${AW_RUNS:-2}
RATE=${AW_RATE:-40}
SECS=${AW_SECS:-30}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
command -v callgrind_control >/dev/null || { echo "ap_audit_window: no valgrind" >&2; exit 0; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/suiro-auditwin-XXXXXX")
. "$ROOT/bench/lib.sh" # stop_pid, ap_serve, ap_load, ap_stop, ap_make_data
SRV=
cleanup() {
  stop_pid "$SRV"
  rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
printf '[audit]\nreads = on\n' > "$T/on.ini"
printf '[audit]\nreads = off\n' > "$T/off.ini"
ap_make_data "$B0" "$T/d0"
: > "$T/loads"
for run in $(seq "$RUNS"); do
  if [ $((run % 2)) = 1 ]; then modes="off on"; else modes="on off"; fi
  for v in $modes; do
    for L in "A $((RATE / 4))" "B $RATE"; do
      set -- $L
      rm -rf "$T/w" "$T"/cg.out*
      cp -a "$T/d0" "$T/w"
      ap_serve "$B0" "$T/w" "$T/$v.ini" valgrind --tool=callgrind --callgrind-out-file="$T/cg.out"
      ap_load "$B0" 1 2 "$2" >/dev/null # the warm-up: the session, the first batch
      callgrind_control -z "$SRV" >/dev/null
      out=$(ap_load "$B0" "$SECS" 2 "$2")
      callgrind_control -d "$SRV" >/dev/null
      ap_stop
      f=$(ls "$T"/cg.out.* 2>/dev/null | head -n 1 || true)
      "$PY" -c 'import json,re,sys
run, v, l, secs, rate, f, o = sys.argv[1:]
n = json.loads(o or "{}").get("requests") or 0
tot = sum(int(x) for x in re.findall(r"^totals: *(\d+)", open(f).read(), re.M)) if f else 0
print(json.dumps({"bench": "ap_audit_window", "run": int(run), "reads": v, "load": l, "secs": float(secs),
                  "rate": float(rate), "requests": n, "instr": tot}, separators=(",", ":")))' \
        "$run" "$v" "$1" "$SECS" "$2" "$f" "$out" | tee -a "$T/loads"
    done
  done
done
"$PY" - "$T/loads" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
r = {(d["run"], d["reads"], d["load"]): d for d in rows}
per, cost = {"on": [], "off": []}, []
for run in sorted({d["run"] for d in rows}):
    got = {}
    for v in ("off", "on"):
        a, b = r.get((run, v, "A")), r.get((run, v, "B"))
        kept = lambda d: d["requests"] >= 0.97 * d["secs"] * d["rate"]  # the load kept its pace
        if a and b and a["instr"] and b["instr"] and kept(a) and kept(b) and b["requests"] > a["requests"]:
            got[v] = round((b["instr"] - a["instr"]) / (b["requests"] - a["requests"]), 1)
            per[v].append(got[v])
    if len(got) == 2:
        cost.append(round((got["on"] / got["off"] - 1) * 100, 2))
med = lambda x: round(statistics.median(x), 1) if x else None
c = med(cost)
print(json.dumps({"bench": "ap_audit_window_ratio", "runs": len(cost), "rate": max((d["rate"] for d in rows), default=None),
                  "off_instr_per_req": per["off"], "on_instr_per_req": per["on"], "runs_cost_pct": cost,
                  "cost_pct": c, "goal_cost_pct_below": 5, "goal_met": bool(c is not None and c < 5),
                  "verify": "ok" if cost else "FAILED"}, separators=(",", ":")))
PYEOF
