#!/usr/bin/env bash
# bench/restart_sizes.sh BUILD -- restart time at 1x, 10x and 100x the data,
# for the series and the snapshot shapes, suiro side by side with
# VictoriaMetrics (issue #13: "Restart <= VictoriaMetrics' at every data
# size"; docs/durability.md section 8).
#
#   bash bench/restart_sizes.sh build          (bench/run.sh calls it so)
#
# About 2 minutes on the 2-core bench machine with the defaults (1x = 1,000
# points x 100 s = 100 k values; 100x = 10 M values).
#
# For each shape (RS_SHAPES) and size k (RS_SIZES): the data set of
# bench/shape_ingest (its header: P points, 1 s values from
# 2023-11-15T00:00:00Z, 2-decimal random walks) with S = RS_BASE_S x k
# seconds, loaded into a fresh system through the same generator:
#   suiro            `suiro serve`, sync=always, log AES-256-GCM, MQTT QoS 1
#                    (one connection per gateway, RS_WINDOW unacknowledged);
#                    then kill -9 right after the last acknowledgement
#                    (everything acknowledged is durable) and started again
#                    on the same directory (the open replays the tail since
#                    the last heads checkpoint), then a graceful stop
#                    (SIGTERM: the close's heads checkpoint when the heads
#                    hold older events than a quarter of replay_max_events)
#                    and started again
#   victoriametrics  line protocol to /write (RS_LINES values a request, 4 in
#                    flight), graceful stop, start again
# The restart clock is bench/net_ingest.sh's: bench/ready_poll, started right
# after the server with the time taken just before it, queries every
# RS_POLL_MS [5] ms on a fresh connection until the answer holds the data:
# suiro: the 1-day count of point 0 (SP0001_001) through AP-IF = S, after an
# app login that is timed apart (secs excludes its round trip, as
# net_ingest.sh's restart goal does; secs_with_login includes it);
# VictoriaMetrics: count_over_time(v_value{p="P00000"}[1d]) = S. suiro's
# line also has the events its open re-read (replay_events, from the
# "serving" log line) and its startup phases.
#
# Environment: RS_SHAPES [series snapshot], RS_SIZES [1 10 100], RS_POINTS
# [1000], RS_BASE_S [100], RS_PER [100] (points per gateway = values per
# series message), RS_SYSTEMS [suiro victoriametrics], RS_WINDOW [16],
# RS_LINES [5000], RS_POLL_MS [5], RS_KEEP=1 keeps the temporary directory.
#
# Output, on stdout, one line per system x shape x size (x stop for suiro):
#   {"bench":"restart_size","system":..,"shape":..,"size":k,"values":..,
#    "stop":"graceful"|"kill -9","secs":..,"secs_with_login":..,
#    "replay_events":..,"load_points_per_s":..,"verify":..}
# and per shape x size {"bench":"restart_size_ratio","shape":..,"size":k,
# "suiro_secs":..,"suiro_kill9_secs":..,"victoriametrics_secs":..,
# "suiro_vs_victoriametrics":..,"goal":"<= 1","met":..}. verify is "ok" when
# the load was acknowledged in full and the restarted system answered with
# the data; the exit code is non-zero when one failed. Every process started
# here is stopped by its PID (trap EXIT).
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$BUILD" && pwd)
BIN=$BUILD/suiro
GEN=$BUILD/bench/shape_ingest
RP=$BUILD/bench/ready_poll
SHAPES=${RS_SHAPES:-series snapshot}
SIZES=${RS_SIZES:-1 10 100}
SYSTEMS=${RS_SYSTEMS:-suiro victoriametrics}
P=${RS_POINTS:-1000}
BASE_S=${RS_BASE_S:-100}
M=${RS_PER:-100}
W=${RS_WINDOW:-16}
LINES=${RS_LINES:-5000}
POLL_MS=${RS_POLL_MS:-5}
OP=sim
G=$(( (P + M - 1) / M ))
T0_S=1700006400 # 2023-11-15T00:00:00Z, bench/shape_ingest's RS_T0
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)

die() { echo "restart_sizes: $*" >&2; exit 1; }
say() { echo "restart_sizes: $*" >&2; }
[ -x "$BIN" ] || die "no $BIN (build first: make build)"
[ -x "$GEN" ] && [ -x "$RP" ] || die "no $GEN or $RP (build with -DSR_BUILD_BENCH=ON)"
VMBIN=$(command -v victoria-metrics || true)
case " $SYSTEMS " in *" victoriametrics "*)
  [ -n "$VMBIN" ] || bash "$ROOT/scripts/deps.sh" --bench >&2 || true
  VMBIN=$(command -v victoria-metrics || true)
  [ -n "$VMBIN" ] || die "victoria-metrics (Debian package 'victoria-metrics') is missing" ;;
esac

T=$(mktemp -d "${TMPDIR:-/tmp}/suiro-restart-XXXXXX")
. "$ROOT/bench/lib.sh"   # stop_pid, merge, field
PID=
cleanup() {
  if [ -n "$PID" ]; then stop_pid "$PID"; fi
  if [ "${RS_KEEP:-0}" = 1 ]; then say "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0 || a == "" || a == "null" || b == "null") print "null"; else printf "%.3f", a / b }'; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
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
gen() { # gen SHAPE SECONDS ARGS...: the generator's JSON line ({} when none) with "gen_rc"
  local sh=$1 s=$2 out rc=0
  shift 2
  out=$("$GEN" --shape "$sh" --points "$P" --seconds "$s" --per "$M" --operator "$OP" "$@" 2>>"$T/gen.err" | tail -n 1) || rc=$?
  [ -n "$out" ] || { out='{}'; tail -n 3 "$T/gen.err" >&2; }
  merge "$out" "{\"gen_rc\":$rc}"
}
ready() { # ready T0 ARGS...: bench/ready_poll for $PID started at T0
  local t0=$1 out
  shift
  out=$("$RP" --t0 "$t0" --pid "$PID" --every-ms "$POLL_MS" --timeout 300 "$@") || true
  [ -n "$out" ] || out='{"ready_s":null}'
  echo "$out"
}

# the set-up sheet: G gateways x M number points, and an app to query with
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
(umask 077; "$PY" -c 'import os; print(os.urandom(32).hex())' > "$T/log.key")
"$BIN" init "$T/suiro-template" --key-file "$T/log.key" >/dev/null
"$BIN" sheet import "$T/sheet.csv" "$T/suiro-template" --key-file "$T/log.key" >/dev/null
say "$P points ($G gateways x $M), sizes ${SIZES} x $BASE_S s, shapes: $SHAPES; systems: $SYSTEMS"

declare -A SECS
ALL_OK=1
SUIRO_VER=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)

# suiro_restart DIR S: start serve on DIR with known ports, time the first
# answer with the data; prints the poller's line merged with the serving
# line's replay count and phases; leaves the server running ($PID: call it
# outside a command substitution)
suiro_restart() {
  local D=$1 s=$2 sport hport t0 rp q0 phases
  sport=$(free_port); hport=$(free_port)
  : > "$T/serve.err"
  q0="dataId=SP0001_001&from=2023-11-15T00:00:00Z&to=2023-11-16T00:00:00Z&interval=1d&agg=count"
  t0=$EPOCHREALTIME
  "$BIN" serve --data "$D" --mqtt "127.0.0.1:$sport" --http "127.0.0.1:$hport" --key-file "$T/log.key" > /dev/null 2>> "$T/serve.err" &
  PID=$!
  rp=$(ready "$t0" --http "http://127.0.0.1:$hport/api/v1/stored-values?$q0" --expect "\"count\":$s" \
    --login "http://127.0.0.1:$hport/api/v1/sessions" \
    --login-body "{\"operatorId\":\"$OP\",\"appId\":\"BENCH\",\"secret\":\"bench-app-secret-1\"}")
  phases=$(grep 'msg="serving"' "$T/serve.err" | tail -n 1 | "$PY" -c 'import json, re, sys
l = sys.stdin.read()
d = {k: float(v) for k, v in re.findall(r"(\w+_ms)=([0-9.]+)", l)}
r = re.search(r"replay_events=([0-9]+)", l)
print(json.dumps({"startup_ms": d or None, "replay_events": int(r.group(1)) if r else None}, separators=(",", ":")))')
  merge "$rp" "$phases"
}

run_suiro() { # run_suiro SHAPE SIZE
  local sh=$1 k=$2 s=$(( BASE_S * $2 )) D="$T/suiro" out uq sport
  rm -rf "$D"
  cp -a "$T/suiro-template" "$D"
  sport=$(free_port)
  : > "$T/serve.err"
  "$BIN" serve --data "$D" --mqtt "127.0.0.1:$sport" --http 127.0.0.1:0 --key-file "$T/log.key" > /dev/null 2>> "$T/serve.err" &
  PID=$!
  wait_for 60 bash -c "exec 3<>/dev/tcp/127.0.0.1/$sport" || { tail -n 20 "$T/serve.err" >&2; die "suiro serve did not start"; }
  say "$sh ${k}x: suiro load"
  out=$(gen "$sh" "$s" --mqtt "127.0.0.1:$sport" --window "$W" --server-pid "$PID" --system suiro)
  uq=$(field "$out" values_unique)
  local load_ok=0
  [ "$(field "$out" gen_rc)" = 0 ] && [ -n "$uq" ] && load_ok=1
  kill -KILL "$PID"; wait "$PID" 2>/dev/null || true; PID=
  local stop rp secs rs ls v
  for stop in "kill -9" graceful; do # the restart after kill -9 is stopped gracefully
    say "$sh ${k}x: suiro restart after $stop"
    suiro_restart "$D" "$s" > "$T/rp.json" # not in $(..): $PID must be set here
    rp=$(cat "$T/rp.json")
    stop_pid "$PID"; PID=
    rs=$(fieldn "$rp" ready_s); ls=$(fieldn "$rp" login_s)
    secs=null
    [ "$rs" != null ] && [ "$ls" != null ] && secs=$(elapsed "$ls" "$rs")
    v=FAILED
    [ "$load_ok" = 1 ] && [ "$secs" != null ] && v=ok
    [ "$v" = ok ] || { ALL_OK=0; say "$sh ${k}x suiro ($stop) FAILED: load rc=$(field "$out" gen_rc) poll=$rp"; }
    [ "$stop" = graceful ] && SECS[$sh.$k.suiro]=$secs || SECS[$sh.$k.suiro_kill9]=$secs
    merge "{\"bench\":\"restart_size\",\"system\":\"suiro\",\"shape\":\"$sh\",\"size\":$k,\"points\":$P,\"seconds\":$s,\"values\":${uq:-null},\"stop\":\"$stop\"}" \
      "{\"secs\":$secs,\"secs_with_login\":$rs,\"login_s\":$ls,\"up_s\":$(fieldn "$rp" up_s),\"polls\":$(fieldn "$rp" attempts),\"poll_ms\":$POLL_MS,\"replay_events\":$(fieldn "$rp" replay_events)}" \
      "{\"startup_ms\":$(echo "$rp" | "$PY" -c 'import json,sys; print(json.dumps(json.load(sys.stdin).get("startup_ms"),separators=(",",":")))')}" \
      "{\"load_points_per_s\":$(fieldn "$out" points_per_s),\"version\":\"$SUIRO_VER\",\"durability\":\"sync=always, log AES-256-GCM\",\"verify\":\"$v\"}"
  done
  rm -rf "$D"
}

run_victoriametrics() { # run_victoriametrics SHAPE SIZE
  local sh=$1 k=$2 s=$(( BASE_S * $2 )) D="$T/vm" hp out uq t0 rp secs v=FAILED
  rm -rf "$D"
  hp=$(free_port)
  local U="http://127.0.0.1:$hp"
  vm_start() {
    "$VMBIN" -storageDataPath "$D" -httpListenAddr "127.0.0.1:$hp" -retentionPeriod 100y \
      -dedup.minScrapeInterval 1ms -loggerLevel WARN >> "$T/victoriametrics.log" 2>&1 &
    PID=$!
  }
  vm_start
  wait_for 60 curl -sf "$U/health" || { tail -n 20 "$T/victoriametrics.log" >&2; die "victoria-metrics did not start"; }
  say "$sh ${k}x: victoriametrics load"
  out=$(gen "$sh" "$s" --vm "$U" --lines "$LINES" --conc 4 --server-pid "$PID" --system victoriametrics)
  uq=$(field "$out" values_unique)
  curl -sf "$U/internal/force_flush" >/dev/null || true
  stop_pid "$PID"; PID=
  say "$sh ${k}x: victoriametrics restart"
  local q
  q=$("$PY" -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' 'count_over_time(v_value{p="P00000"}[1d])')
  t0=$EPOCHREALTIME
  vm_start
  rp=$(ready "$t0" --http "$U/api/v1/query?query=$q&time=$((T0_S + s))" --expect "\"$s\"]")
  stop_pid "$PID"; PID=
  secs=$(fieldn "$rp" ready_s)
  [ "$(field "$out" gen_rc)" = 0 ] && [ -n "$uq" ] && [ "$secs" != null ] && v=ok
  [ "$v" = ok ] || { ALL_OK=0; say "$sh ${k}x victoriametrics FAILED: load rc=$(field "$out" gen_rc) poll=$rp"; }
  SECS[$sh.$k.victoriametrics]=$secs
  merge "{\"bench\":\"restart_size\",\"system\":\"victoriametrics\",\"shape\":\"$sh\",\"size\":$k,\"points\":$P,\"seconds\":$s,\"values\":${uq:-null},\"stop\":\"graceful\"}" \
    "{\"secs\":$secs,\"up_s\":$(fieldn "$rp" up_s),\"polls\":$(fieldn "$rp" attempts),\"poll_ms\":$POLL_MS,\"load_points_per_s\":$(fieldn "$out" points_per_s),\"version\":\"$(dpkg-query -W -f='${Version}' victoria-metrics 2>/dev/null || echo unknown)\",\"durability\":\"acknowledges before fsync\",\"verify\":\"$v\"}"
  rm -rf "$D"
}

has() { case " $SYSTEMS " in *" $1 "*) return 0 ;; esac; return 1; }
for sh in $SHAPES; do
  case $sh in series|snapshot) ;; *) die "unknown shape '$sh' in RS_SHAPES" ;; esac
  for k in $SIZES; do
    for sys in $SYSTEMS; do
      case $sys in suiro|victoriametrics) "run_$sys" "$sh" "$k" ;; *) die "unknown system '$sys' in RS_SYSTEMS" ;; esac
    done
    if has suiro && has victoriametrics; then
      q=$(div "${SECS[$sh.$k.suiro]:-}" "${SECS[$sh.$k.victoriametrics]:-}")
      qk=$(div "${SECS[$sh.$k.suiro_kill9]:-}" "${SECS[$sh.$k.victoriametrics]:-}")
      met=null; [ "$q" != null ] && met=$(awk -v q="$q" 'BEGIN { print (q + 0 <= 1) ? "true" : "false" }')
      vv=ok; [ "$q" != null ] || vv=FAILED
      merge "{\"bench\":\"restart_size_ratio\",\"shape\":\"$sh\",\"size\":$k,\"points\":$P,\"seconds\":$(( BASE_S * k ))}" \
        "{\"suiro_secs\":${SECS[$sh.$k.suiro]:-null},\"suiro_kill9_secs\":${SECS[$sh.$k.suiro_kill9]:-null},\"victoriametrics_secs\":${SECS[$sh.$k.victoriametrics]:-null}}" \
        "{\"suiro_vs_victoriametrics\":$q,\"suiro_kill9_vs_victoriametrics\":$qk,\"goal\":\"<= 1\",\"met\":$met,\"verify\":\"$vv\"}"
    fi
  done
done
[ "$ALL_OK" = 1 ] || { say "a verification FAILED (see the lines above)"; exit 1; }
