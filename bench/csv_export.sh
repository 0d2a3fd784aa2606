#!/usr/bin/env bash
# bench/csv_export.sh BUILD -- the CSV export rate (R-PO-1, docs/csv.md):
# `suiro serve`'s stored values as CSV (format=csv, streamed) against
# VictoriaMetrics' /api/v1/export/csv (Debian package `victoria-metrics`) on
# the same data, in the same run, with the same client.
#
#   bash bench/csv_export.sh build          (bench/run.sh calls it so)
#
# DATA: bench/ap_query.py's data set (the engine benchmarks' reference set:
#  P00000's whole day of 1 s values, P00001..P00099 the first hour; 442,800
#  values, 2-decimal random walks), loaded as bench/ap_query.sh loads it
#  (suiro: GW-IF HTTP, sync=always, the log encrypted; VictoriaMetrics: the
#  Prometheus import, then /internal/force_flush).
# WHAT IS MEASURED: one export of every value of the day (all 100 points),
#  CE_RUNS times after one warm-up, by curl on one connection each
#  (-o file): suiro GET /api/v1/stored-values?dataId=P00000..P00099&from=
#  &to=&format=csv (dataId,timestamp,value,quality; RFC 3339 times with ms);
#  VictoriaMetrics GET /api/v1/export/csv?format=id,__timestamp__:unix_ms,
#  __value__&match[]=m&start=&end= (the shortest columns it offers: no
#  quality, integer times -- less text to write than suiro's rows).
#  Each body is checked (bench/csv_export.py): every value of the data set
#  once, exactly ("verify"). The figure is values/s of the median run.
# OUTPUT: one JSON line per system
#  {"bench":"csv_export","system":..,"values":..,"bytes":..,"median_s":..,
#   "values_per_s":..,"mb_per_s":..,"version":..,"verify":..}
#  ("loadavg_1m": the machine's load when the runs started: a shared machine)
#  and {"bench":"csv_export_ratio","suiro_vs_victoriametrics":..} (> 1: suiro
#  exports more values a second). Exit status 0 only when every line verified.
# Environment: CE_RUNS [5]. Every process started here is stopped by its PID.
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$(cd "$BUILD" && pwd)/suiro
CE_RUNS=${CE_RUNS:-5}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
AQ="$ROOT/bench/ap_query.py"
CE="$ROOT/bench/csv_export.py"
die() { echo "csv_export: $*" >&2; exit 1; }
[ -x "$BIN" ] || die "no $BIN (build first)"
VMBIN=$(command -v victoria-metrics 2>/dev/null || true)
[ -n "$VMBIN" ] || { bash "$ROOT/scripts/deps.sh" --bench >&2 || true; VMBIN=$(command -v victoria-metrics 2>/dev/null || true); }
[ -n "$VMBIN" ] || die "VictoriaMetrics (Debian package 'victoria-metrics') is not installed; run 'bash scripts/deps.sh --bench' as root"

T=$(mktemp -d "${TMPDIR:-/tmp}/suiro-csvexport-XXXXXX")
. "$ROOT/bench/lib.sh"   # stop_pid, field
SRV= VM=
cleanup() { for p in $SRV $VM; do stop_pid "$p"; done; rm -rf "$T"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# runs NAME URL [curl args]: CE_RUNS timed GETs after a warm-up; the first body kept
runs() {
  local name=$1 url=$2 times="" t
  shift 2
  curl -sf -o "$T/body-$name" "$@" "$url" || die "$name: the export failed"
  for _ in $(seq "$CE_RUNS"); do
    t=$(curl -sf -o /dev/null -w '%{time_total}' "$@" "$url") || die "$name: the export failed"
    times="$times $t"
  done
  echo "$times"
}

echo "csv_export: generating the data set (bench/ap_query.py gen)" >&2
"$PY" "$AQ" gen "$T/data" > "$T/gen.json"
FROM=2023-11-15T00:00:00Z
TO=2023-11-16T00:00:00Z
: > "$T/results"

# ---- suiro ----
D="$T/suiro-data"
(umask 077; "$PY" -c 'import os; print(os.urandom(32).hex())' > "$T/log.key")
"$BIN" init "$D" --key-file "$T/log.key" >/dev/null
"$BIN" sheet import "$T/data/sheet.csv" "$D" --key-file "$T/log.key" >/dev/null
"$BIN" serve --data "$D" --mqtt 127.0.0.1:0 --http 127.0.0.1:0 --key-file "$T/log.key" > "$T/suiro.out" 2> "$T/suiro.err" &
SRV=$!
for _ in $(seq 100); do grep -q '^listening http' "$T/suiro.out" 2>/dev/null && break; kill -0 "$SRV" 2>/dev/null || break; sleep 0.1; done
SP=$(sed -n 's/^listening http=.*:\([0-9]*\)$/\1/p' "$T/suiro.out" | head -n 1)
[ -n "$SP" ] || { tail -n 20 "$T/suiro.err" >&2; die "suiro serve did not start"; }
SU=http://127.0.0.1:$SP
echo "csv_export: loading suiro through GW-IF HTTP" >&2
"$PY" "$AQ" load-suiro "$SU" bench GW1 bench-gw1-secret "$T/data/suiro.jsonl" >/dev/null
TOK=$(SUIRO_TOKEN= "$BIN" apsim login --url "$SU" --operator bench --app APP1 --secret bench-app1-secret |
  "$PY" -c 'import json,sys; print(json.load(sys.stdin)["token"])')
IDS=$("$PY" -c 'print("&".join("dataId=P%05d" % p for p in range(100)))')
load1=$(cut -d' ' -f1 /proc/loadavg)
times=$(runs suiro "$SU/api/v1/stored-values?$IDS&from=$FROM&to=$TO&format=csv" -H "Authorization: Bearer $TOK")
chk=$("$PY" "$CE" check suiro "$T/body-suiro")
sx=$(printf '{"version":"%s","request":"GET /api/v1/stored-values?dataId=P00000..P00099&from=%s&to=%s&format=csv","durability":"sync=always, log encrypted","loadavg_1m":%s}' \
  "$("$BIN" version | awk '{print $2}')" "$FROM" "$TO" "$load1")
"$PY" "$CE" report suiro "$times" "$(stat -c %s "$T/body-suiro")" "$chk" "$sx" | tee -a "$T/results"
stop_pid "$SRV"
SRV=

# ---- VictoriaMetrics ----
VP=$(free_port)
vver=$(dpkg-query -W -f='${Version}' victoria-metrics 2>/dev/null || echo unknown)
"$VMBIN" -storageDataPath="$T/vm" -retentionPeriod=100y -httpListenAddr="127.0.0.1:$VP" -search.disableCache \
  -loggerLevel=ERROR > "$T/vm.out" 2> "$T/vm.err" &
VM=$!
VU=http://127.0.0.1:$VP
for _ in $(seq 300); do curl -sf -o /dev/null "$VU/health" && break; kill -0 "$VM" 2>/dev/null || die "victoria-metrics exited"; sleep 0.1; done
echo "csv_export: loading VictoriaMetrics $vver through the Prometheus import" >&2
"$PY" "$AQ" load-vm "$VU" "$T/data/vm.prom" >/dev/null
S=$("$PY" -c 'import calendar,time; print(calendar.timegm(time.strptime("'$FROM'","%Y-%m-%dT%H:%M:%SZ")))')
E=$((S + 86400 - 1))
load1=$(cut -d' ' -f1 /proc/loadavg)
times=$(runs victoriametrics "$VU/api/v1/export/csv?format=id,__timestamp__:unix_ms,__value__&match%5B%5D=m&start=$S&end=$E.999")
chk=$("$PY" "$CE" check victoriametrics "$T/body-victoriametrics")
vx=$(printf '{"version":"%s","request":"GET /api/v1/export/csv?format=id,__timestamp__:unix_ms,__value__&match[]=m&start=%s&end=%s.999","loadavg_1m":%s}' "$vver" "$S" "$E" "$load1")
"$PY" "$CE" report victoriametrics "$times" "$(stat -c %s "$T/body-victoriametrics")" "$chk" "$vx" | tee -a "$T/results"
stop_pid "$VM"
VM=

"$PY" - "$T/results" <<'PYEOF'
import json, sys
r = {j["system"]: j for j in map(json.loads, open(sys.argv[1]))}
s, v = r.get("suiro", {}).get("values_per_s"), r.get("victoriametrics", {}).get("values_per_s")
ok = all(j.get("verify") == "ok" for j in r.values()) and len(r) == 2
print(json.dumps({"bench": "csv_export_ratio", "suiro_vs_victoriametrics": round(s / v, 2) if s and v else None,
                  "verify": "ok" if ok else "FAILED"}, separators=(",", ":")))
sys.exit(0 if ok else 1)
PYEOF
