#!/usr/bin/env bash
# bench/shape_ingest.sh BUILD -- the message shapes of issue #13, each against
# the peers in the same run: durable network ingest, messages/s, the
# acknowledgement's p99 at half the maximum rate, bytes on disk, the
# generator's and the server's CPU.
#
#   bash bench/shape_ingest.sh build          (bench/run.sh calls it so)
#
# About 4 minutes on the 2-core bench machine with the defaults (3 shapes x
# 5 systems, 1 M values each, 100 gateway logins per suiro run).
#
# One generator for every system and shape: bench/shape_ingest (its header
# describes the data set and the shapes). The same P points x S seconds
# (2-decimal random walks) travel as
#   series    messages of one point x M consecutive values,
#   snapshot  messages of one gateway's M points x 1 value, one timestamp,
#   mixed     the snapshots plus a backfill of old series (SH_BACKFILL_BP of
#             the values, 1 %: one-point messages of M values 30 days back);
# per shape, the systems (SH_SYSTEMS):
#   suiro_mqtt       `suiro serve`, sync=always, log AES-256-GCM: MQTT 3.1.1
#                    QoS 1 (PUBACK = fdatasynced and indexed), one connection
#                    per gateway, at most SH_WINDOW unacknowledged each
#   suiro_http       the same server, its GW-IF over HTTP (POST
#                    /gw/v1/measurements, one message a request, SH_HTTP_CONC
#                    in flight: suiro's HTTP acknowledges about as many
#                    messages/s with 16 as with 128)
#   mosquitto        Mosquitto 2.0, the same MQTT client and messages; no
#                    subscriber, persistence with autosave 1 s: it acknowledges
#                    from memory (the cost of MQTT alone)
#   influxdb         InfluxDB 1.6, line protocol (its best: SH_LINES values a
#                    request, SH_CONC in flight), wal-fsync-delay 0
#   victoriametrics  VictoriaMetrics, the same lines to its /write (it
#                    acknowledges before any fsync; -dedup.minScrapeInterval=1ms)
# Each suiro run is a fresh data directory: a copy of one made by init and
# sheet import (G gateways SIM0001.. with M points each, SP<gw 4
# digits>_<point 3 digits>) before the first run.
#
# After a run: what the system holds is counted from the system itself
# (suiro: AP-IF downsampled counts, 100 dataIds a request; InfluxDB: SELECT
# count(value); VictoriaMetrics: /api/v1/export/csv lines after a
# force_flush, counted again for up to 10 s while new series become searchable)
# and must be every value sent; then, after a graceful stop, the
# bytes on disk per value (allocated, du -s -B1; suiro's log/ and index/
# apart). The MQTT systems then get a paced run at half the maximum
# messages/s just measured (SH_PACE_S seconds of messages, timestamps a day
# later and messageIds of their own; suiro restarted on the same directory
# first) for the PUBACK p50/p99.
#
# Environment (defaults in brackets): SH_SHAPES [series snapshot mixed],
# SH_SYSTEMS [suiro_mqtt suiro_http mosquitto influxdb victoriametrics],
# SH_POINTS [10000], SH_SECONDS [100] (1 M values a shape), SH_PER points per
# gateway = values per series message [100], SH_BACKFILL_BP [100],
# SH_SEED [42], SH_WINDOW [16], SH_HTTP_CONC [64], SH_LINES [5000],
# SH_CONC [4], SH_PACE_S [5], SH_KEEP=1 keeps the temporary directory,
# SH_PERF=PREFIX records `perf record` of suiro serve during each suiro
# load, from the moment the logins are done, into PREFIX.<system>.<shape>
# (SH_PERF_OPTS replaces "-F 499 --call-graph dwarf,16384"),
# SH_CALLGRIND=PREFIX runs suiro serve under `valgrind --tool=callgrind
# --instr-atstart=no` and counts instructions from the end of the logins to
# the last acknowledgement (callgrind_control -i on / off; every thread)
# into PREFIX.<system>.<shape> (no paced run then; use small SH_POINTS x
# SH_SECONDS: callgrind is ~50 x slower; docs/performance-notes.md
# "Instruction counts" reads these files), SH_SUIRO_CONF a configuration
# file for suiro serve (--config; e.g. [server] parse_inline_max = 0: every
# message parsed on the worker threads), SH_GEN another
# build of the generator (e.g. a sanitizer build) [BUILD/bench/shape_ingest].
#
# Output, on stdout, per shape and system: {"bench":"shape_ingest","shape":..,
# "system":..,...the generator's figures (points_per_s, msg_per_s, ack p50/p99,
# gen_cpu_*, server_cpu_*)..,"stored_values":..,"bytes_per_point":..,
# "log_bytes_per_point":..,"index_bytes_per_point":..,"verify":..}; per MQTT
# system {"bench":"shape_ingest_paced","shape":..,"system":..,"ack_p99_ms":..};
# per shape {"bench":"shape_ratio","shape":..} with the goals of issue #13
# (ingest >= 1.5x VictoriaMetrics and >= 5x InfluxDB, MQTT msg/s >= Mosquitto,
# PUBACK p99 <= 5 ms at half the maximum rate, bytes <= VictoriaMetrics').
# Every line has "verify":"ok"|"FAILED"; the exit code is non-zero when one
# failed. Every process started here is stopped by its PID (trap EXIT).
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$BUILD" && pwd)
BIN=$BUILD/suiro
GEN=${SH_GEN:-$BUILD/bench/shape_ingest}
SHAPES=${SH_SHAPES:-series snapshot mixed}
SYSTEMS=${SH_SYSTEMS:-suiro_mqtt suiro_http mosquitto influxdb victoriametrics}
P=${SH_POINTS:-10000}
S=${SH_SECONDS:-100}
M=${SH_PER:-100}
BF=${SH_BACKFILL_BP:-100}
SEED=${SH_SEED:-42}
W=${SH_WINDOW:-16}
HCONC=${SH_HTTP_CONC:-64}
LINES=${SH_LINES:-5000}
CONC=${SH_CONC:-4}
PACE_S=${SH_PACE_S:-5}
OP=sim
G=$(( (P + M - 1) / M ))
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)

die() { echo "shape_ingest: $*" >&2; exit 1; }
say() { echo "shape_ingest: $*" >&2; }
[ -x "$BIN" ] || die "no $BIN (build first: make build)"
[ -x "$GEN" ] || die "no $GEN (build with -DSR_BUILD_BENCH=ON)"
MOSQ=$(command -v mosquitto || { [ -x /usr/sbin/mosquitto ] && echo /usr/sbin/mosquitto; } || true)
INFLUXD=$(command -v influxd || true)
VMBIN=$(command -v victoria-metrics || true)
if [ -z "$MOSQ" ] || [ -z "$INFLUXD" ] || [ -z "$VMBIN" ]; then
  say "a peer is missing; trying: bash scripts/deps.sh --bench"
  bash "$ROOT/scripts/deps.sh" --bench >&2 || true
  MOSQ=$(command -v mosquitto || { [ -x /usr/sbin/mosquitto ] && echo /usr/sbin/mosquitto; } || true)
  INFLUXD=$(command -v influxd || true)
  VMBIN=$(command -v victoria-metrics || true)
fi
for s in $SYSTEMS; do
  case $s in
    suiro_mqtt|suiro_http) ;;
    mosquitto) [ -n "$MOSQ" ] || die "mosquitto (Debian package 'mosquitto') is missing" ;;
    influxdb) [ -n "$INFLUXD" ] || die "influxd (Debian package 'influxdb') is missing" ;;
    victoriametrics) [ -n "$VMBIN" ] || die "victoria-metrics (Debian package 'victoria-metrics') is missing" ;;
    *) die "unknown system '$s' in SH_SYSTEMS" ;;
  esac
done
for sh in $SHAPES; do
  case $sh in series|snapshot|mixed) ;; *) die "unknown shape '$sh' in SH_SHAPES" ;; esac
done

T=$(mktemp -d "${TMPDIR:-/tmp}/suiro-shapes-XXXXXX")
. "$ROOT/bench/lib.sh"   # stop_pid, merge, field
PID=   # the one server running at a time
cleanup() {
  if [ -n "$PID" ]; then stop_pid "$PID"; fi
  if [ "${SH_KEEP:-0}" = 1 ]; then say "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo unknown; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0 || a == "" || a == "null" || b == "null") print "null"; else printf "%.3f", a / b }'; }
du_alloc() { du -s -B1 "$@" 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }
du_b() { du -sb "$@" 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }
wait_for() { # wait_for SECONDS CMD...: until CMD succeeds; 1 when time is up or $PID exited
  local limit=$(( $1 * 1000000 )) t0=${EPOCHREALTIME/./}
  shift
  while :; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    kill -0 "$PID" 2>/dev/null || return 1
    [ $(( ${EPOCHREALTIME/./} - t0 )) -lt "$limit" ] || return 1
    sleep 0.05
  done
}
met() { awk -v v="$1" -v op="$2" -v g="$3" 'BEGIN { if (v == "null" || v == "") print "null";
  else if (op == ">=") print (v + 0 >= g + 0) ? "true" : "false";
  else print (v + 0 <= g + 0) ? "true" : "false" }'; }
gen() { # gen SHAPE ARGS...: the generator's JSON line ({} when it printed none) with its exit code "gen_rc"
  local sh=$1 out rc=0
  shift
  out=$("$GEN" --shape "$sh" --points "$P" --seconds "$S" --per "$M" --backfill-bp "$BF" --seed "$SEED" \
    --operator "$OP" "$@" 2>>"$T/gen.err" | tail -n 1) || rc=$?
  [ -n "$out" ] || { out='{}'; tail -n 3 "$T/gen.err" >&2; }
  merge "$out" "{\"gen_rc\":$rc}"
}

# the set-up sheet: G gateways x M number points, and an app to count with
"$PY" - "$G" "$M" "$OP" > "$T/sheet.csv" <<'EOF'
import sys
g, m, op = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
print("#suiro-setup-sheet v1\n\n[operator]\nid,name\n%s,Simulated operator\n\n[gateways]\nid,name,secret" % op)
for k in range(1, g + 1): print("SIM%04d,Simulated gateway %d,sim-secret-SIM%04d" % (k, k, k))
print("\n[facilities]\nid,name\nSF1,Simulated plant\n\n[equipment]\nid,facility,name\nSE1,SF1,Simulated equipment")
print("\n[devices]\nid,equipment,gateway,name")
for k in range(1, g + 1): print("SD%04d,SE1,SIM%04d,Simulated device %d" % (k, k, k))
print("\n[datapoints]\nid,device,name,type,unit,min,max,kind")
for k in range(1, g + 1):
    for j in range(1, m + 1): print("SP%04d_%03d,SD%04d,Point %d of %d,number,m3/h,-1000000,1000000,measure" % (k, j, k, j, k))
print("\n[apps]\nid,name,secret,push_url\nBENCH,Benchmark reader,bench-app-secret-1,\n\n[grants]\napp,datapoint,access\nBENCH,*,read")
EOF
"$PY" -c 'import sys
g, m = int(sys.argv[1]), int(sys.argv[2])
for k in range(1, g + 1):
    for j in range(1, m + 1): print("SP%04d_%03d" % (k, j))' "$G" "$M" | head -n "$P" > "$T/ids"
(umask 077; "$PY" -c 'import os; print(os.urandom(32).hex())' > "$T/log.key")
say "$P points ($G gateways x $M) x $S s, shapes: $SHAPES; systems: $SYSTEMS"

declare -A RATE MSGR BPP P99 VER
ALL_OK=1
SUIRO_VER=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)

# ---- suiro -------------------------------------------------------------------
suiro_start() { # suiro_start DIR: serve on DIR; sets PID, sport, hport
  : > "$T/serve.out"
  local cg=()
  [ -n "${SH_CALLGRIND:-}" ] && cg=(valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$SH_CALLGRIND.$CG_NAME")
  local conf=()
  [ -n "${SH_SUIRO_CONF:-}" ] && conf=(--config "$SH_SUIRO_CONF")
  "${cg[@]}" "$BIN" serve "${conf[@]}" --data "$1" --mqtt 127.0.0.1:0 --http 127.0.0.1:0 --key-file "$T/log.key" > "$T/serve.out" 2>> "$T/serve.err" &
  PID=$!
  wait_for 120 grep -q '^listening http=' "$T/serve.out" || { tail -n 20 "$T/serve.err" >&2; die "suiro serve did not start"; }
  sport=$(sed -n 's/^listening mqtt=.*:\([0-9]*\)$/\1/p' "$T/serve.out" | head -n 1)
  hport=$(sed -n 's/^listening http=.*:\([0-9]*\)$/\1/p' "$T/serve.out" | head -n 1)
}
suiro_count() { # values the index holds (AP-IF downsampled counts, 100 dataIds a request)
  "$PY" - "$hport" "$T/ids" <<'EOF'
import json, sys, urllib.request, urllib.parse
port, idf = sys.argv[1:3]
base = "http://127.0.0.1:%s/api/v1" % port
b = json.dumps({"operatorId": "sim", "appId": "BENCH", "secret": "bench-app-secret-1"}).encode()
tok = json.load(urllib.request.urlopen(urllib.request.Request(base + "/sessions", b, {"Content-Type": "application/json"}), timeout=60))["token"]
ids = [l.strip() for l in open(idf) if l.strip()]
n = 0
for i in range(0, len(ids), 100):
    q = [("dataId", d) for d in ids[i:i + 100]] + [("from", "2023-10-01T00:00:00Z"), ("to", "2023-11-20T00:00:00Z"),
                                                  ("interval", "1d"), ("agg", "count")]
    r = urllib.request.Request(base + "/stored-values?" + urllib.parse.urlencode(q), headers={"Authorization": "Bearer " + tok})
    for v in json.load(urllib.request.urlopen(r, timeout=120))["values"]:
        n += v["count"]
print(n)
EOF
}
run_suiro() { # run_suiro SHAPE SYSTEM(suiro_mqtt|suiro_http)
  local sh=$1 sys=$2 D="$T/$2-$1" out n v=FAILED
  local dur="sync=always: acknowledged once the log is fdatasynced and the index committed; log AES-256-GCM"
  if [ ! -d "$T/suiro-template" ]; then # init + sheet import once (10,000 points take a while), then copies
    "$BIN" init "$T/suiro-template" --key-file "$T/log.key" >/dev/null
    "$BIN" sheet import "$T/sheet.csv" "$T/suiro-template" --key-file "$T/log.key" >/dev/null
  fi
  cp -a "$T/suiro-template" "$D"
  CG_NAME=$sys.$sh suiro_start "$D"
  say "$sh: $sys"
  local perf=
  rm -f "$T/ready"
  if [ -n "${SH_PERF:-}" ]; then # the server's profile over the timed part (after the logins)
    ( while [ ! -e "$T/ready" ]; do sleep 0.05; done
      exec perf record -q ${SH_PERF_OPTS:--F 499 --call-graph dwarf,16384} -o "$SH_PERF.$sys.$sh" -p "$PID" ) > "$T/perf.log" 2>&1 &
    perf=$!
  fi
  local cgon=
  if [ -n "${SH_CALLGRIND:-}" ]; then # instructions from the end of the logins on
    ( while [ ! -e "$T/ready" ]; do sleep 0.05; done
      exec callgrind_control -i on "$PID" ) > "$T/cg.log" 2>&1 &
    cgon=$!
  fi
  if [ "$sys" = suiro_mqtt ]; then
    out=$(gen "$sh" --mqtt "127.0.0.1:$sport" --window "$W" --server-pid "$PID" --system "$sys" --ready-file "$T/ready")
  else
    out=$(gen "$sh" --gw-http "http://127.0.0.1:$hport" --conc "$HCONC" --server-pid "$PID" --system "$sys" --ready-file "$T/ready")
  fi
  if [ -n "$perf" ]; then
    kill -INT "$perf" 2>/dev/null || true
    wait "$perf" || true
    [ -s "$SH_PERF.$sys.$sh" ] || say "perf record: $(tail -n 3 "$T/perf.log")"
  fi
  if [ -n "$cgon" ]; then
    wait "$cgon" || say "callgrind_control -i on: $(tail -n 3 "$T/cg.log")"
    callgrind_control -i off "$PID" >/dev/null 2>&1 || say "callgrind_control -i off failed"
  fi
  local rc; rc=$(field "$out" gen_rc)
  n=$(suiro_count || echo -1)
  local s_rc=0
  kill -TERM "$PID"; wait "$PID" || s_rc=$?; PID=
  local uq; uq=$(field "$out" values_unique)
  [ "$rc" = 0 ] && [ "$s_rc" = 0 ] && [ -n "$uq" ] && [ "$n" = "$uq" ] && v=ok
  [ "$v" = ok ] || say "$sh $sys verify FAILED: generator rc=$rc serve rc=$s_rc index=$n/$uq"
  local a la ia; a=$(du_alloc "$D"); la=$(du_alloc "$D/log"); ia=$(du_alloc "$D/index")
  RATE[$sh.$sys]=$(field "$out" points_per_s); MSGR[$sh.$sys]=$(field "$out" msg_per_s)
  BPP[$sh.$sys]=$(div "$a" "$uq"); VER[$sh.$sys]=$v
  merge "$out" "{\"durability\":\"$dur\",\"version\":\"$SUIRO_VER\",\"stored_values\":$n,\"bytes_per_point\":${BPP[$sh.$sys]},\"log_bytes_per_point\":$(div "$la" "$uq"),\"index_bytes_per_point\":$(div "$ia" "$uq"),\"apparent_bytes_per_point\":$(div "$(du_b "$D")" "$uq"),\"disk\":\"after a graceful stop, du -s -B1\",\"verify\":\"$v\"}"
  [ "$v" = ok ] || ALL_OK=0
  if [ "$sys" = suiro_mqtt ] && [ "$v" = ok ] && [ -z "${SH_CALLGRIND:-}" ]; then
    CG_NAME=$sys.$sh.paced suiro_start "$D"
    paced "$sh" "$sys" "127.0.0.1:$sport"
    stop_pid "$PID"; PID=
  fi
  rm -rf "$D"
}
# paced SHAPE SYSTEM HOST:PORT: SH_PACE_S seconds at half the measured msg/s
paced() {
  local sh=$1 sys=$2 hp=$3 half out v=FAILED
  half=$(awk -v r="${MSGR[$sh.$sys]:-0}" 'BEGIN { printf "%d", r / 2 }')
  [ "$half" -ge 1 ] || return 0
  say "$sh: $sys paced at $half msg/s for ${PACE_S} s"
  out=$(gen "$sh" --mqtt "$hp" --window "$W" --rate "$half" --max-msgs $(( half * PACE_S )) \
    --t-offset-s 86400 --id-prefix p --server-pid "$PID" --system "$sys")
  [ "$(field "$out" gen_rc)" = 0 ] && v=ok
  P99[$sh.$sys]=$(field "$out" ack_p99_ms)
  merge "$out" "{\"bench\":\"shape_ingest_paced\",\"target_msg_per_s\":$half,\"goal_ack_p99_ms\":5,\"verify\":\"$v\"}"
  [ "$v" = ok ] || ALL_OK=0
}

# ---- Mosquitto -----------------------------------------------------------------
run_mosquitto() {
  local sh=$1 port out v=FAILED ver
  port=$(free_port)
  mkdir -p "$T/mosq"
  { echo "listener $port 127.0.0.1"; echo "allow_anonymous true"; echo "persistence true"
    echo "persistence_location $T/mosq/"; echo "autosave_interval 1"; echo "log_dest stderr"
    if [ "$(id -u)" = 0 ]; then echo "user root"; fi; } > "$T/mosquitto.conf"
  ver=$("$MOSQ" -h 2>/dev/null | sed -n 's/^mosquitto version \([^ ]*\).*/\1/p' | head -n 1 || true)
  "$MOSQ" -c "$T/mosquitto.conf" > /dev/null 2>> "$T/mosq.err" &
  PID=$!
  wait_for 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" || die "mosquitto did not start"
  say "$sh: mosquitto"
  out=$(gen "$sh" --mqtt "127.0.0.1:$port" --window "$W" --server-pid "$PID" --system mosquitto)
  [ "$(field "$out" gen_rc)" = 0 ] && v=ok
  RATE[$sh.mosquitto]=$(field "$out" points_per_s); MSGR[$sh.mosquitto]=$(field "$out" msg_per_s); VER[$sh.mosquitto]=$v
  merge "$out" "{\"durability\":\"acknowledged from memory, persisted on autosave (1 s); no subscriber\",\"version\":\"${ver:-unknown}\",\"bytes_per_point\":null,\"verify\":\"$v\"}"
  [ "$v" = ok ] || ALL_OK=0
  [ "$v" = ok ] && paced "$sh" mosquitto "127.0.0.1:$port"
  stop_pid "$PID"; PID=
  rm -rf "$T/mosq"
}

# ---- InfluxDB 1.x --------------------------------------------------------------
run_influxdb() {
  local sh=$1 D="$T/influxdb-$1" hp rp out n v=FAILED
  local dur="wal-fsync-delay=0s (the default): the WAL is fsynced before a write is answered"
  hp=$(free_port); rp=$(free_port)
  mkdir -p "$D"
  printf 'reporting-disabled = true\nbind-address = "127.0.0.1:%s"\n[meta]\n  dir = "%s/meta"\n[data]\n  dir = "%s/data"\n  wal-dir = "%s/wal"\n  wal-fsync-delay = "0s"\n  query-log-enabled = false\n[monitor]\n  store-enabled = false\n[http]\n  bind-address = "127.0.0.1:%s"\n  log-enabled = false\n[continuous_queries]\n  enabled = false\n[logging]\n  level = "warn"\n' \
    "$rp" "$D" "$D" "$D" "$hp" > "$T/influxdb.conf"
  local U="http://127.0.0.1:$hp"
  "$INFLUXD" run -config "$T/influxdb.conf" >> "$T/influxdb.log" 2>&1 &
  PID=$!
  wait_for 60 curl -sf "$U/ping" || { tail -n 20 "$T/influxdb.log" >&2; die "influxd did not start"; }
  curl -sf -XPOST "$U/query" --data-urlencode 'q=CREATE DATABASE bench' >/dev/null
  say "$sh: influxdb"
  out=$(gen "$sh" --influx "$U" --lines "$LINES" --conc "$CONC" --server-pid "$PID" --system influxdb)
  local rc; rc=$(field "$out" gen_rc)
  n=$(curl -sf -G "$U/query" --data-urlencode db=bench --data-urlencode 'q=SELECT count(value) FROM v' | "$PY" -c 'import json,sys
try: print(json.load(sys.stdin)["results"][0]["series"][0]["values"][0][1])
except Exception: print(-1)')
  stop_pid "$PID"; PID=
  local uq; uq=$(field "$out" values_unique)
  [ "$rc" = 0 ] && [ -n "$uq" ] && [ "$n" = "$uq" ] && v=ok
  [ "$v" = ok ] || say "$sh influxdb verify FAILED: generator rc=$rc count=$n/$uq"
  RATE[$sh.influxdb]=$(field "$out" points_per_s); MSGR[$sh.influxdb]=$(field "$out" msg_per_s)
  BPP[$sh.influxdb]=$(div "$(du_alloc "$D")" "$uq"); VER[$sh.influxdb]=$v
  merge "$out" "{\"durability\":\"$dur\",\"version\":\"$(pkgver influxdb)\",\"stored_values\":$n,\"bytes_per_point\":${BPP[$sh.influxdb]},\"apparent_bytes_per_point\":$(div "$(du_b "$D")" "$uq"),\"disk\":\"after a graceful stop, du -s -B1: wal/, data/ (sparse series file), meta/\",\"verify\":\"$v\"}"
  [ "$v" = ok ] || ALL_OK=0
  rm -rf "$D"
}

# ---- VictoriaMetrics ---------------------------------------------------------------
run_victoriametrics() {
  local sh=$1 D="$T/vm-$1" hp out n v=FAILED
  local dur="acknowledges before fsync: rows are buffered in memory and written about once a second"
  hp=$(free_port)
  local U="http://127.0.0.1:$hp"
  "$VMBIN" -storageDataPath "$D" -httpListenAddr "127.0.0.1:$hp" -retentionPeriod 100y \
    -dedup.minScrapeInterval 1ms -loggerLevel WARN >> "$T/victoriametrics.log" 2>&1 &
  PID=$!
  wait_for 60 curl -sf "$U/health" || { tail -n 20 "$T/victoriametrics.log" >&2; die "victoria-metrics did not start"; }
  say "$sh: victoriametrics"
  out=$(gen "$sh" --vm "$U" --lines "$LINES" --conc "$CONC" --server-pid "$PID" --system victoriametrics)
  local rc; rc=$(field "$out" gen_rc)
  local uq; uq=$(field "$out" values_unique)
  # what it holds, after a force_flush; new series become searchable a moment
  # later (its index is flushed about once a second): counted again for up to 10 s
  local tries=0
  while :; do
    curl -sf "$U/internal/force_flush" >/dev/null || true
    n=$(curl -sf "$U/api/v1/export/csv" --data-urlencode 'format=__timestamp__:unix_ms' \
        --data-urlencode 'match[]={__name__="v_value"}' --data-urlencode 'start=2023-10-01T00:00:00Z' \
        --data-urlencode 'end=2023-11-20T00:00:00Z' | wc -l)
    tries=$((tries + 1))
    [ "$n" != "$uq" ] && [ "$tries" -lt 20 ] || break
    sleep 0.5
  done
  stop_pid "$PID"; PID=
  [ "$rc" = 0 ] && [ -n "$uq" ] && [ "$n" = "$uq" ] && v=ok
  [ "$v" = ok ] || say "$sh victoriametrics verify FAILED: generator rc=$rc exported=$n/$uq"
  RATE[$sh.victoriametrics]=$(field "$out" points_per_s); MSGR[$sh.victoriametrics]=$(field "$out" msg_per_s)
  BPP[$sh.victoriametrics]=$(div "$(du_alloc "$D")" "$uq"); VER[$sh.victoriametrics]=$v
  merge "$out" "{\"durability\":\"$dur\",\"version\":\"$(pkgver victoria-metrics)\",\"dedup_min_scrape_interval\":\"1ms\",\"stored_values\":$n,\"count_tries\":$tries,\"bytes_per_point\":${BPP[$sh.victoriametrics]},\"apparent_bytes_per_point\":$(div "$(du_b "$D")" "$uq"),\"disk\":\"after a graceful stop, du -s -B1: data/, indexdb/, cache/\",\"verify\":\"$v\"}"
  [ "$v" = ok ] || ALL_OK=0
  rm -rf "$D"
}

has() { case " $SYSTEMS " in *" $1 "*) return 0 ;; esac; return 1; }
for sh in $SHAPES; do
  for s in $SYSTEMS; do
    case $s in
      suiro_mqtt|suiro_http) run_suiro "$sh" "$s" ;;
      *) "run_$s" "$sh" ;;
    esac
  done
  # ---- the goals of issue #13 on this shape ----
  r="{\"bench\":\"shape_ratio\",\"shape\":\"$sh\",\"points\":$P,\"seconds\":$S,\"per\":$M}"
  vv=ok
  for s in $SYSTEMS; do [ "${VER[$sh.$s]:-FAILED}" = ok ] || vv=FAILED; done
  for x in suiro_mqtt suiro_http; do
    has "$x" || continue
    for peer in victoriametrics influxdb; do
      has "$peer" || continue
      q=$(div "${RATE[$sh.$x]:-}" "${RATE[$sh.$peer]:-}")
      g=$([ "$peer" = victoriametrics ] && echo 1.5 || echo 5)
      r=$(merge "$r" "{\"${x}_vs_${peer}\":$q,\"goal_${x}_vs_${peer}\":\">= $g\",\"met_${x}_vs_${peer}\":$(met "$q" ">=" "$g")}")
    done
  done
  if has suiro_mqtt && has mosquitto; then
    q=$(div "${MSGR[$sh.suiro_mqtt]:-}" "${MSGR[$sh.mosquitto]:-}")
    r=$(merge "$r" "{\"msg_per_s_suiro_vs_mosquitto\":$q,\"goal_msg_per_s_suiro_vs_mosquitto\":\">= 1\",\"met_msg_per_s_suiro_vs_mosquitto\":$(met "$q" ">=" 1)}")
    r=$(merge "$r" "{\"suiro_ack_p99_ms_half_rate\":${P99[$sh.suiro_mqtt]:-null},\"mosquitto_ack_p99_ms_half_rate\":${P99[$sh.mosquitto]:-null},\"goal_ack_p99_ms\":\"<= 5\",\"met_ack_p99_ms\":$(met "${P99[$sh.suiro_mqtt]:-null}" "<=" 5)}")
  fi
  if has suiro_mqtt && has victoriametrics; then
    q=$(div "${BPP[$sh.suiro_mqtt]:-}" "${BPP[$sh.victoriametrics]:-}")
    r=$(merge "$r" "{\"bytes_suiro_vs_victoriametrics\":$q,\"goal_bytes_suiro_vs_victoriametrics\":\"<= 1\",\"met_bytes_suiro_vs_victoriametrics\":$(met "$q" "<=" 1)}")
  fi
  merge "$r" "{\"verify\":\"$vv\"}"
done
[ "$ALL_OK" = 1 ] || { say "a verification FAILED (see the lines above)"; exit 1; }
