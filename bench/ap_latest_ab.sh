#!/usr/bin/env bash
# bench/ap_latest_ab.sh BEFORE_SUIRO AFTER_SUIRO -- the AP-IF latest value
# (ap_query.sh's `latest` query: GET /api/v1/stored-values/latest, one data
# point, `suiro apsim load`) of two builds side by side in one run, to show
# what a change of the request path costs (issue #14: the live grant and
# revocation checks, docs/admin.md "Revocation").
#
#   bash bench/ap_latest_ab.sh /tmp/suiro-main build/suiro
#
# WHAT IS MEASURED
#  Data: `suiro init --demo` and one value of P001 through the GW-IF HTTP
#  binding, made by each build for itself (a newer build's index layout is
#  one an older build refuses); each round serves a fresh copy of it
#  (sync=always, not encrypted), on 127.0.0.1.
#  1. req/s: AB_ROUNDS rounds (default 8), each build once a round, their
#     order alternating (before/after, after/before, ...), each AB_SECONDS
#     (4) of `apsim load --what latest --data-id P001` with AB_CONNS (8)
#     keep-alive connections after a fresh login; also the server's CPU
#     (user+system, all threads) per answered request and the machine's
#     1-minute load when the round started: on a shared 2-core machine
#     wall-clock rates move by 2x with the neighbours, so compare the
#     medians and look at the load.
#  2. instructions per request (callgrind, the noise-free figure): each
#     build under `valgrind --tool=callgrind`, collecting only inside
#     sr_apif_handle (the AP-IF dispatcher: route, token, the registry
#     generation check, grants, the read, the answer) minus open_session
#     and session_close (nested toggles), for AB_CG_SECONDS (10) of the same
#     load over one connection; total instructions / requests.
# OUTPUT: one JSON line per round and build ({"bench":"ap_latest_ab",
#  "build":"before|after",...}), then the medians and the callgrind lines
#  ({"bench":"ap_latest_ab_instr",...}). Every process started here is
#  stopped by its PID.
set -euo pipefail
B0=$(readlink -f "${1:?usage: ap_latest_ab.sh BEFORE_SUIRO AFTER_SUIRO}")
B1=$(readlink -f "${2:?usage: ap_latest_ab.sh BEFORE_SUIRO AFTER_SUIRO}")
ROUNDS=${AB_ROUNDS:-8}
SECS=${AB_SECONDS:-4}
CONNS=${AB_CONNS:-8}
CGSECS=${AB_CG_SECONDS:-10}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/suiro-ablatest-XXXXXX")
. "$ROOT/bench/lib.sh" # stop_pid, ap_serve, ap_load, ap_stop, ap_make_data, ap_cpu_s
SRV=
cleanup() {
  stop_pid "$SRV"
  rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cpu_s() { ap_cpu_s "$@"; }
bin_of() { [ "$1" = before ] && echo "$B0" || echo "$B1"; }
# serve BIN DIR [PREFIX...] (bench/lib.sh: one copy with ap_audit_cost.sh)
serve() { local bin=$1 dir=$2; shift 2; ap_serve "$bin" "$dir" "" "$@"; }
stop() { ap_stop; }
load() { ap_load "$@"; }
make_data() { ap_make_data "$@"; }
make_data "$B0" "$T/d0-before"
make_data "$B1" "$T/d0-after"

# ---- 1. req/s, alternating ---------------------------------------------------
round() { # build
  local v=$1 bin
  bin=$(bin_of "$1")
  rm -rf "$T/d-$v"
  cp -a "$T/d0-$v" "$T/d-$v"
  serve "$bin" "$T/d-$v"
  sleep 1
  local l c0 c1 out
  l=$(cut -d' ' -f1 /proc/loadavg)
  c0=$(cpu_s "$SRV")
  out=$(load "$bin" "$SECS" "$CONNS")
  c1=$(cpu_s "$SRV")
  stop
  "$PY" -c 'import json,sys
v, l, c0, c1, o = sys.argv[1:]
d = json.loads(o or "{}"); n = d.get("requests") or 0
print(json.dumps({"bench": "ap_latest_ab", "build": v, "req_per_s": d.get("req_per_s"), "p50_ms": d.get("p50_ms"),
  "server_cpu_us_per_req": round((float(c1) - float(c0)) * 1e6 / n, 1) if n else None, "errors": d.get("errors"),
  "loadavg_1m": float(l), "connections": d.get("connections"), "verify": "ok" if n and not d.get("errors") else "FAILED"},
  separators=(",", ":")))' "$v" "$l" "$c0" "$c1" "$out" | tee -a "$T/rounds"
}
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then round before; round after; else round after; round before; fi
done
"$PY" - "$T/rounds" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
med = {}
for b in ("before", "after"):
    x = [r for r in rows if r["build"] == b and r["verify"] == "ok"]
    med[b] = (statistics.median(r["req_per_s"] for r in x), statistics.median(r["server_cpu_us_per_req"] for r in x))
print(json.dumps({"bench": "ap_latest_ab_median", "rounds": len(rows) // 2,
                  "before_req_per_s": med["before"][0], "after_req_per_s": med["after"][0],
                  "after_vs_before": round(med["after"][0] / med["before"][0], 3),
                  "before_cpu_us_per_req": med["before"][1], "after_cpu_us_per_req": med["after"][1]},
                 separators=(",", ":")))
EOF

# ---- 2. instructions per request (callgrind) ------------------------------------
command -v valgrind >/dev/null || { echo "ap_latest_ab: no valgrind: no instruction counts" >&2; exit 0; }
for v in before after; do
  bin=$(bin_of "$v")
  rm -rf "$T/c-$v"
  cp -a "$T/d0-$v" "$T/c-$v"
  serve "$bin" "$T/c-$v" valgrind --tool=callgrind --collect-atstart=no --toggle-collect=sr_apif_handle \
    --toggle-collect=open_session --toggle-collect=session_close --callgrind-out-file="$T/cg-$v.out"
  out=$(load "$bin" "$CGSECS" 1)
  stop
  "$PY" -c 'import json,re,sys
v, f, o = sys.argv[1:]
n = json.loads(o or "{}").get("requests") or 0
tot = int(re.search(r"^totals: *(\d+)", open(f).read(), re.M).group(1))
print(json.dumps({"bench": "ap_latest_ab_instr", "build": v, "requests": n, "instr": tot,
  "instr_per_req": round(tot / n, 1) if n else None, "collect": "sr_apif_handle - open_session - session_close",
  "verify": "ok" if n and tot else "FAILED"}, separators=(",", ":")))' "$v" "$T/cg-$v.out" "$out"
done
