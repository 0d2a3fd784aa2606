#!/usr/bin/env bash
# bench/ap_query.sh BUILD -- AP-IF stored-value queries over HTTP: `suiro
# serve` against InfluxDB 1.6 and VictoriaMetrics (Debian packages `influxdb`,
# `victoria-metrics`) on the same data, measured by the same client (issue #5).
#
#   bash bench/ap_query.sh build          (bench/run.sh calls it so)
#
# WHAT IS MEASURED
#  Five queries per system, each repeated for AQ_SECONDS by `suiro apsim load`
#  (libcurl multi, AQ_CONNS keep-alive connections, one thread; suiro through
#  its AP-IF with a session, the peers with `load --get-url`):
#    latest      the latest value of P00000 (one value)
#    day_raw     P00000's whole day of 1 s values, raw (86,400 values)
#    day_1m      the same day downsampled to 1 min: min, max, avg, count (1,440 buckets)
#    series_raw  one series of the reference set, P00050's hour, raw (3,600 values)
#    series_1m   the same downsampled to 1 min (60 buckets)
#  Each system answers in its own JSON, so the answers differ in size (the
#  "bytes" of one answer are printed): suiro's values carry dataId, an RFC 3339
#  time and quality, InfluxDB's rows [time, value], VictoriaMetrics' export a
#  values array and a millisecond timestamps array.
#  What each query is per system (the exact request is the "request" field):
#    suiro     GET /api/v1/stored-values/latest?dataId=P00000;
#              GET /api/v1/stored-values?dataId=..&from=..&to=..&limit=100000 (raw);
#              the same with &interval=1m&agg=min,max,avg,count (downsampled)
#    InfluxDB  /query?db=bench&q= SELECT last(value) FROM m WHERE id='P00000';
#              SELECT value FROM m WHERE id=.. AND time >= .. AND time < ..;
#              SELECT min(value),max(value),mean(value),count(value) .. GROUP BY time(1m)
#    VictoriaMetrics
#              latest: /api/v1/query?query=m{id="P00000"}&time=<day end>, an
#                instant query (the default look-back finds the last value);
#              raw: /api/v1/export?match[]=m{id=..}&start=..&end=..;
#              downsampled: /api/v1/query_range?query=aggr_over_time(("min_over_time",
#                "max_over_time","avg_over_time","count_over_time"),m{id=..}[60s])
#                with step=60s, each step's window (t-60s, t] placed on the
#                bucket [start, start+60s) (see bench/ap_query.py)
#  Every answer is checked, not just counted: apsim requires HTTP 200 and
#  identical bytes on every repetition (FNV-1a hash of the first printed as
#  "hash"), and the first answer is parsed and compared value by value with
#  the generated data set (timestamps, values, bucket count/min/max exactly,
#  avg to 1e-9): "verify":"ok" or "FAILED" with "why".
#
# DATA (bench/ap_query.py gen): the engine benchmarks' reference set
#  (bench/engbench.c: points P%05d, 1 s values from 2023-11-15T00:00:00Z,
#  2-decimal random walks of seed 42), cut to fit a quick run on 2 cores:
#  P00000 has the whole day (86,400 values), P00001..P00099 the first hour
#  (3,600 each): 442,800 values, the same in all three systems. suiro gets
#  them through its GW-IF HTTP binding (GW_MEASUREMENTS, 100 s of every point
#  a message), InfluxDB through its line protocol, VictoriaMetrics through its
#  Prometheus import. Before measuring, each system must hold exactly the
#  day's values of P00000 and the total (suiro: a 1-day count downsample of
#  every point; InfluxDB: SELECT count(value) .. GROUP BY id; VM:
#  count_over_time(m[1d])): the "ap_query_load" line; a system that does not
#  fails the run and its queries are skipped.
#
# DURABILITY (each system as shipped, except where said)
#  suiro            sync=always: a GW-IF write is answered once fsynced; the log
#                   is encrypted (aes-256-gcm) unless AQ_ENC=0.
#  InfluxDB 1.6     the default WAL: every write is fsynced before it is
#                   acknowledged (wal-fsync-delay 0s). cache-snapshot-write-
#                   cold-duration is 1 s so the loaded data is snapshotted
#                   into TSM files (where a day-old series would be) before
#                   the queries; monitor store, continuous queries, HTTP and
#                   query logging off; max-row-limit 0 (no truncation).
#  VictoriaMetrics  acknowledges before fsync (rows buffered in memory,
#                   flushed to disk about every second); /internal/force_flush
#                   before the queries. -search.disableCache: the rollup
#                   result cache is off, so each request is computed, as in
#                   the two others (no system here caches answers).
#  Systems run one after the other (suiro, InfluxDB, VictoriaMetrics) on
#  127.0.0.1, each alone with the client on this machine's cores; before the
#  queries each one is left to settle (its CPU use below 5 % for a second).
#  "server_cpu_ms_per_req" is the server's CPU (user+system, all threads) per
#  answered request: with client and server sharing two cores it tells the
#  server's cost apart from the client's. "loadavg_1m" is the machine's load
#  when the query started: the bench machine is shared, and a figure taken
#  at a load well above its 2 cores is noisy (compare server_cpu_ms_per_req).
#
# OUTPUT on stdout, one JSON line each:
#  {"bench":"ap_query_load","system":..,"values":..,"day_values":..,"load_s":..,"verify":..}
#  {"bench":"ap_query","system":"suiro|influxdb|victoriametrics","query":..,"points":..,
#   "req_per_s":..,"p50_ms":..,"p99_ms":..,"bytes":..,...,"version":..,"durability":..,"verify":..}
#  {"bench":"ap_query_size","system":"suiro","query":"day_raw|snapshot_raw","points":..,"values":..,
#   "bytes":..,"compact_bytes":..,"compact_ratio":..,"verify":..}
#    (one answer in the contract's form and in the compact form, format=compact (ext):
#    P00000's day, and a snapshot of every point at one second; no timing)
#  {"bench":"ap_query_ratio","query":..,"suiro_vs_influxdb":..,"suiro_vs_victoriametrics":..}
#    (ratios of req/s; > 1: suiro answers more requests a second)
#  Exit status 0 only when every line verified.
#
# Environment (defaults in brackets): AQ_SECONDS seconds each query is
# repeated [4], AQ_CONNS connections [8], AQ_ENC=1 encrypt suiro's log [1],
# AQ_PERF=FILE record `perf record -g` of suiro serve during the query
# AQ_PERF_QUERY [day_raw] into FILE (AQ_PERF_OPTS replaces -g; the Debian
# libraries have no frame pointers, so "--call-graph dwarf,16384 -F 200"
# attributes better, at some cost to that query's figures), AQ_POINTS
# [100] and AQ_SERIES_S [3600] resize the data set.
# Every process started here is stopped by its PID (trap EXIT).
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$(cd "$BUILD" && pwd)/suiro
AQ_SECONDS=${AQ_SECONDS:-4}
AQ_CONNS=${AQ_CONNS:-8}
AQ_ENC=${AQ_ENC:-1}
AQ_PERF=${AQ_PERF:-}
AQ_PERF_QUERY=${AQ_PERF_QUERY:-day_raw}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
HELPER="$ROOT/bench/ap_query.py"
QUERIES=(latest day_raw day_1m series_raw series_1m)

die() { echo "ap_query: $*" >&2; exit 1; }
[ -x "$BIN" ] || die "no $BIN (build first: cmake -S . -B $BUILD && cmake --build $BUILD)"

# ---- the peers: Debian packages, installed by scripts/deps.sh --bench ---------
find_peers() {
  INFLUXD=$(command -v influxd 2>/dev/null || true)
  VMBIN=$(command -v victoria-metrics 2>/dev/null || true)
}
find_peers
if [ -z "$INFLUXD" ] || [ -z "$VMBIN" ]; then
  echo "ap_query: influxd or victoria-metrics is missing; trying: bash scripts/deps.sh --bench" >&2
  bash "$ROOT/scripts/deps.sh" --bench >&2 || true
  find_peers
  [ -n "$INFLUXD" ] && [ -n "$VMBIN" ] ||
    die "InfluxDB and VictoriaMetrics (Debian packages 'influxdb', 'victoria-metrics') are not installed and could not be; run 'bash scripts/deps.sh --bench' as root"
fi
pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo unknown; }

T=$(mktemp -d "${TMPDIR:-/tmp}/suiro-apquery-XXXXXX")
. "$ROOT/bench/lib.sh"   # stop_pid, merge, field
SRV= IDB= VM= PERF=
cleanup() {
  for p in $PERF $SRV $IDB $VM; do stop_pid "$p"; done
  rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_s() { # user+system CPU seconds of a live process (all its threads)
  awk -v hz="$(getconf CLK_TCK)" '{sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz}' "/proc/$1/stat" 2>/dev/null || echo 0
}
wait_http() { # URL PID NAME: until the URL answers 2xx
  for _ in $(seq 300); do
    kill -0 "$2" 2>/dev/null || die "$3 exited at start: $(tail -n 5 "$T/$3.err" 2>/dev/null)"
    if curl -sf -o /dev/null "$1"; then return 0; fi
    sleep 0.1
  done
  die "$3 did not answer $1"
}
settle() { # PID: wait (at most 60 s) until the process uses < 5 % CPU for a second
  local a b
  for _ in $(seq 60); do
    a=$(cpu_s "$1"); sleep 1; b=$(cpu_s "$1")
    awk -v a="$a" -v b="$b" 'BEGIN{exit !(b - a < 0.05)}' && return 0
  done
  echo "ap_query: pid $1 still busy after 60 s; measuring anyway" >&2
}
field() { "$PY" -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2], ""))' "$1" "$2"; }

# load_line SYSTEM LOAD_JSON COUNT_JSON EXPECTED_TOTAL -> prints the line; 0 when it holds the data
load_line() {
  "$PY" - "$@" <<'EOF'
import json, sys
system, ld, cnt, total = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ld = json.loads(ld or "{}"); cnt = json.loads(cnt or "{}")
ok = cnt.get("day") == 86400 and cnt.get("total") == total
r = {"bench": "ap_query_load", "system": system, "values": cnt.get("total"), "day_values": cnt.get("day"),
     "expected_values": total, "expected_day_values": 86400}
r.update(ld)
r["verify"] = "ok" if ok else "FAILED"
print(json.dumps(r, separators=(",", ":")))
sys.exit(0 if ok else 1)
EOF
}

# measure SYSTEM QUERY PID REQUEST EXTRA_JSON APSIM-ARGS...: one query under load, one result line
measure() {
  local system=$1 query=$2 pid=$3 request=$4 extra=$5
  shift 5
  local body="$T/body-$system-$query" out c0 c1 cpu load1
  rm -f "$body"
  if [ "$system" = suiro ] && [ -n "$AQ_PERF" ] && [ "$query" = "$AQ_PERF_QUERY" ]; then
    ( exec perf record -q ${AQ_PERF_OPTS:--g} -o "$AQ_PERF" -p "$pid" -- sleep "$AQ_SECONDS" ) >"$T/perf.log" 2>&1 &
    PERF=$!
    sleep 0.3
  fi
  load1=$(cut -d' ' -f1 /proc/loadavg)
  c0=$(cpu_s "$pid")
  out=$("$BIN" apsim load "$@" --duration "$AQ_SECONDS" --connections "$AQ_CONNS" --save-body "$body" </dev/null \
    2>"$T/apsim-$system-$query.err" | tail -n 1) || true
  c1=$(cpu_s "$pid")
  if [ -n "$PERF" ]; then wait "$PERF" || echo "ap_query: perf record failed: $(tail -n 3 "$T/perf.log")" >&2; PERF=; fi
  [ -n "$out" ] || echo "ap_query: $system $query: apsim load printed nothing: $(tail -n 3 "$T/apsim-$system-$query.err")" >&2
  cpu=$("$PY" -c 'import json,sys
l = json.loads(sys.argv[3] or "{}"); n = l.get("requests") or 0
print(round((float(sys.argv[2]) - float(sys.argv[1])) * 1000 / n, 3) if n else "null")' "$c0" "$c1" "$out")
  extra=$("$PY" -c 'import json,sys; d=json.loads(sys.argv[1]); d["server_cpu_ms_per_req"]=json.loads(sys.argv[2]); d["loadavg_1m"]=float(sys.argv[4]); d["request"]=sys.argv[3]; print(json.dumps(d))' \
    "$extra" "$cpu" "$request" "$load1")
  "$PY" "$HELPER" report "$system" "$query" "$out" "$body" "$extra" | tee -a "$T/results"
  rm -f "$body"
}

echo "ap_query: generating the data set (bench/ap_query.py gen)" >&2
"$PY" "$HELPER" gen "$T/data" > "$T/gen.json"
TOTAL=$(field "$(cat "$T/gen.json")" values)
FROM=2023-11-15T00:00:00Z
DAY_TO=2023-11-16T00:00:00Z
SERIES_ID=$(field "$(cat "$T/gen.json")" series_id)
SERIES_TO=$("$PY" -c 'import sys,time; print(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1700006400 + int(sys.argv[1]))))' \
  "$(field "$(cat "$T/gen.json")" series_s)")
: > "$T/results"
failed=0

# ---- suiro ---------------------------------------------------------------------
D="$T/suiro-data"
K=()
enc=null
if [ "$AQ_ENC" = 1 ]; then
  (umask 077; "$PY" -c 'import os; print(os.urandom(32).hex())' > "$T/log.key")
  K=(--key-file "$T/log.key")
  enc='"aes-256-gcm"'
fi
"$BIN" init "$D" "${K[@]}" >/dev/null
"$BIN" sheet import "$T/data/sheet.csv" "$D" "${K[@]}" >/dev/null
"$BIN" serve --data "$D" --mqtt 127.0.0.1:0 --http 127.0.0.1:0 "${K[@]}" > "$T/suiro.out" 2> "$T/suiro.err" &
SRV=$!
for _ in $(seq 100); do grep -q '^listening http' "$T/suiro.out" 2>/dev/null && break; kill -0 "$SRV" 2>/dev/null || break; sleep 0.1; done
SP=$(sed -n 's/^listening http=.*:\([0-9]*\)$/\1/p' "$T/suiro.out" | head -n 1)
[ -n "$SP" ] || { tail -n 20 "$T/suiro.err" >&2; die "suiro serve did not start"; }
SU=http://127.0.0.1:$SP
echo "ap_query: suiro $("$BIN" version | awk '{print $2}'): loading $TOTAL values through GW-IF HTTP" >&2
ld=$("$PY" "$HELPER" load-suiro "$SU" bench GW1 bench-gw1-secret "$T/data/suiro.jsonl") || ld='{}'
AP=(--url "$SU" --operator bench --app APP1 --secret bench-app1-secret)
TOK=$(SUIRO_TOKEN= "$BIN" apsim login "${AP[@]}" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["token"])') || TOK=
cnt=$("$PY" "$HELPER" count suiro "$SU" "$TOK" 2>"$T/count-suiro.err") || cnt='{}'
# the compact raw answer (ext) against the default form: bytes only, no timing
[ -n "$TOK" ] && { "$PY" "$HELPER" sizes "$SU" "$TOK" | tee -a "$T/results" || failed=1; }
[ -n "$TOK" ] && SUIRO_TOKEN= "$BIN" apsim logout --url "$SU" --token "$TOK" >/dev/null 2>&1 || true
if load_line suiro "$ld" "$cnt" "$TOTAL" | tee -a "$T/results"; then
  settle "$SRV"
  sx=$(printf '{"version":"%s","durability":"sync=always: acknowledged once fsynced","enc":%s}' \
    "$("$BIN" version | awk '{print $2}')" "$enc")
  DAYW=(--from "$FROM" --to "$DAY_TO")
  SERW=(--from "$FROM" --to "$SERIES_TO")
  AGG=(--interval 1m --agg min,max,avg,count)
  measure suiro latest "$SRV" "/api/v1/stored-values/latest?dataId=P00000" "$sx" \
    "${AP[@]}" --what latest --data-id P00000
  measure suiro day_raw "$SRV" "/api/v1/stored-values?dataId=P00000&from=$FROM&to=$DAY_TO&limit=100000" "$sx" \
    "${AP[@]}" --what raw --data-id P00000 "${DAYW[@]}" --limit 100000
  measure suiro day_1m "$SRV" "/api/v1/stored-values?dataId=P00000&from=$FROM&to=$DAY_TO&interval=1m&agg=min,max,avg,count" "$sx" \
    "${AP[@]}" --what downsample --data-id P00000 "${DAYW[@]}" "${AGG[@]}"
  measure suiro series_raw "$SRV" "/api/v1/stored-values?dataId=$SERIES_ID&from=$FROM&to=$SERIES_TO&limit=100000" "$sx" \
    "${AP[@]}" --what raw --data-id "$SERIES_ID" "${SERW[@]}" --limit 100000
  measure suiro series_1m "$SRV" "/api/v1/stored-values?dataId=$SERIES_ID&from=$FROM&to=$SERIES_TO&interval=1m&agg=min,max,avg,count" "$sx" \
    "${AP[@]}" --what downsample --data-id "$SERIES_ID" "${SERW[@]}" "${AGG[@]}"
else
  echo "ap_query: suiro does not hold the data set ($cnt); its queries are skipped" >&2
  failed=1
fi
stop_pid "$SRV"
SRV=

# peer SYSTEM PID URL EXTRA_JSON: the five queries of the peer at URL
peer_queries() {
  local system=$1 pid=$2 url=$3 extra=$4 q u
  while IFS=$'\t' read -r q u; do
    measure "$system" "$q" "$pid" "$("$PY" -c 'import sys,urllib.parse as p; u=p.urlsplit(sys.argv[1]); print(p.unquote_plus(u.path+"?"+u.query))' "$u")" \
      "$extra" --get-url "$u"
  done < <("$PY" "$HELPER" urls "$system" "$url")
}

# ---- InfluxDB 1.6 ---------------------------------------------------------------
IP=$(free_port)
RP=$(free_port)
mkdir -p "$T/influx"
cat > "$T/influxdb.conf" <<EOF
# written by bench/ap_query.sh: data in the temp dir, loopback only, quiet
reporting-disabled = true
bind-address = "127.0.0.1:$RP"
[meta]
  dir = "$T/influx/meta"
  logging-enabled = false
[data]
  dir = "$T/influx/data"
  wal-dir = "$T/influx/wal"
  # the default: fsync the WAL before acknowledging a write
  wal-fsync-delay = "0s"
  query-log-enabled = false
  # snapshot the cache into TSM files 1 s after the last write (default 10m)
  cache-snapshot-write-cold-duration = "1s"
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[http]
  bind-address = "127.0.0.1:$IP"
  log-enabled = false
  max-row-limit = 0
[logging]
  level = "warn"
EOF
iver=$(pkg_version influxdb)
echo "ap_query: InfluxDB $iver: loading the same values through the line protocol" >&2
"$INFLUXD" -config "$T/influxdb.conf" > "$T/influxdb.out" 2> "$T/influxdb.err" &
IDB=$!
IU=http://127.0.0.1:$IP
wait_http "$IU/ping" "$IDB" influxdb
ld=$("$PY" "$HELPER" load-influx "$IU" "$T/data/influx.lp") || ld='{}'
# the snapshot to TSM: wait until the WAL holds (almost) nothing
for _ in $(seq 120); do
  w=$(du -sk "$T/influx/wal" | awk '{print $1}')
  if [ -n "$(find "$T/influx/data/bench" -name '*.tsm' 2>/dev/null | head -n 1)" ] && [ "$w" -lt 256 ]; then break; fi
  sleep 0.5
done
cnt=$("$PY" "$HELPER" count influxdb "$IU" 2>"$T/count-influxdb.err") || cnt='{}'
if load_line influxdb "$ld" "$cnt" "$TOTAL" | tee -a "$T/results"; then
  settle "$IDB"
  ix=$(printf '{"version":"%s","durability":"WAL fsynced before the write is acknowledged (wal-fsync-delay 0s, the default)","storage":"TSM (cache snapshotted before the queries)"}' "$iver")
  peer_queries influxdb "$IDB" "$IU" "$ix"
else
  echo "ap_query: InfluxDB does not hold the data set ($cnt); its queries are skipped" >&2
  failed=1
fi
stop_pid "$IDB"
IDB=

# ---- VictoriaMetrics --------------------------------------------------------------
VP=$(free_port)
vver=$(pkg_version victoria-metrics)
echo "ap_query: VictoriaMetrics $vver: loading the same values through the Prometheus import" >&2
"$VMBIN" -storageDataPath="$T/vm" -retentionPeriod=100y -httpListenAddr="127.0.0.1:$VP" \
  -search.disableCache -loggerLevel=ERROR > "$T/victoriametrics.out" 2> "$T/victoriametrics.err" &
VM=$!
VU=http://127.0.0.1:$VP
wait_http "$VU/health" "$VM" victoriametrics
ld=$("$PY" "$HELPER" load-vm "$VU" "$T/data/vm.prom") || ld='{}'
cnt=$("$PY" "$HELPER" count victoriametrics "$VU" 2>"$T/count-victoriametrics.err") || cnt='{}'
if load_line victoriametrics "$ld" "$cnt" "$TOTAL" | tee -a "$T/results"; then
  settle "$VM"
  vx=$(printf '{"version":"%s","durability":"acknowledged before fsync: rows buffered in memory, flushed to disk about every second","result_cache":"off (-search.disableCache)"}' "$vver")
  peer_queries victoriametrics "$VM" "$VU" "$vx"
else
  echo "ap_query: VictoriaMetrics does not hold the data set ($cnt); its queries are skipped" >&2
  failed=1
fi
stop_pid "$VM"
VM=

# ---- ratios --------------------------------------------------------------------------
"$PY" "$HELPER" ratios "$T/results"
if grep -q '"verify":"FAILED"' "$T/results"; then failed=1; fi
[ "$failed" = 0 ]
