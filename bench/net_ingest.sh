#!/usr/bin/env bash
# bench/net_ingest.sh BUILD -- durable ingest over the network, bytes on disk
# per point and restart time (issue #6): suiro against InfluxDB 1.6,
# VictoriaMetrics and Redis 7 (Streams, appendfsync always), each on loopback
# in a temporary directory, each sent the same reference data set
# (api/cli/refset.h: P points x S seconds at 1 s, events of one point and 100
# consecutive values, 1 % late values of which half are re-sent duplicates)
# in its own protocol:
#   suiro            MQTT 3.1.1, QoS 1 (PUBACK = durable), GW_MEASUREMENTS JSON:
#                    `suiro gwsim run --reference`, N gateways (point p on
#                    gateway p % N), at most W unacknowledged per gateway
#   InfluxDB         line protocol, POST /write?precision=ms       (bench/peer_ingest)
#   VictoriaMetrics  the same lines to its /write                  (bench/peer_ingest)
#   Redis            XADD s:<point> * t0 <ms> v <csv>, pipelined    (bench/peer_ingest)
#
#   bash bench/net_ingest.sh build
#
# Environment (defaults in brackets): NI_POINTS [2000], NI_SECONDS [3600]
# (7.2 M values; the whole run takes ~1.5 min on the 2-core bench machine),
# NI_LATE_BP [100], NI_SEED [42], NI_GATEWAYS suiro gateways [40; at most 99
# points each],
# NI_WINDOW unacknowledged messages per gateway [16], NI_LINES lines per HTTP
# request [5000], NI_CONC HTTP requests in flight / Redis connections [4],
# NI_REDIS_WINDOW commands pipelined per Redis connection [64],
# NI_SYSTEMS [suiro suiro_plain influxdb victoriametrics redis] (suiro_plain:
# suiro without a key_file, the log unencrypted: the second axis of issue #6,
# encryption on vs off; the hash chain is on in both and timed apart by
# bench/chain_cost, "chain_s"), NI_POLL_MS the restart
# poll interval, every system [5], NI_KEEP=1 keeps the
# temporary directory (data directories, logs) for a look afterwards.
#
# For each system, after the load: what it holds is counted from the system
# itself (suiro: the log through `suiro replay` and the index through AP-IF
# downsampled counts; InfluxDB: SELECT count(value); VictoriaMetrics:
# /api/v1/export/csv after /internal/force_flush; Redis: XRANGE of every
# stream in a Lua script); then `du` of its data directory (running, and
# after a graceful stop: apparent bytes as `du -sb`, and allocated blocks);
# then the restart: started again on the same directory, timed until it
# answers a query that returns the loaded data, and counted again. Bytes per
# point divide by the distinct values (points x seconds).
#
# The restart clock is the same for every system: bench/ready_poll, started
# right after the server with the time taken just before it ($EPOCHREALTIME),
# sends the system's query on a fresh connection every NI_POLL_MS [5] ms until
# the answer holds the data: suiro: the 1-day count of reference point 0
# through AP-IF (GET /api/v1/stored-values?..&interval=1d&agg=count = S);
# InfluxDB: SELECT last(value) of point 0; VictoriaMetrics:
# count_over_time(..[1d]) of point 0 = S; Redis: XLEN of point 0's stream.
# suiro's AP-IF needs an app session: the poller first logs in (POST
# /api/v1/sessions, which checks the app secret's scrypt hash, N=2^14 r=8:
# ~50 ms of CPU by design, for every login, restart or not) and times that
# request apart. The peers run without authentication. The goal ratio
# (restart_ratio) therefore compares suiro's "secs" = start -> the data query
# answered, without the login's own round trip (the time the server is up and
# able to answer); "secs_with_login" (and suiro_with_login_vs_*) is the
# figure an app sees, login included, reported beside it. suiro's restart
# line also carries its startup phases from the serve log ("serving" line:
# key, log recovery, index, heads table, replay, listeners; in ms).
#
# Reading the figures: every system gets the same values (the "hash" of
# gwsim and peer_ingest is the same sum over the distinct samples) in events
# of one point. points_per_s counts the values acknowledged (late duplicates
# included) over the time from the first request to the last answer; for
# suiro it is gwsim's steady rate, from the moment every gateway is logged in
# (each login checks an scrypt hash, ~50 ms of CPU; the rate including the
# logins is printed beside it). Client and server share the 2 cores: gwsim
# formats ~80 bytes of JSON per value, peer_ingest ~40 bytes of line
# protocol (~8 of Redis csv). The goals use allocated bytes (du -s -B1):
# InfluxDB preallocates its series file as sparse 4 MiB segments that du -sb
# counts in full (both figures are printed). VictoriaMetrics runs with
# -dedup.minScrapeInterval=1ms (one value per series and millisecond, as the
# others store) and -retentionPeriod=100y (the data set is from 2023).
#
# Output, on stdout, per system: {"bench":"net_ingest",..}, {"bench":"disk_bytes",..},
# {"bench":"restart",..}; then {"bench":"net_ingest_ratio",..},
# {"bench":"disk_bytes_ratio",..}, {"bench":"restart_ratio",..} with the goals
# of issue #6. Every line has "verify":"ok"|"FAILED" and the system's
# durability; the exit code is non-zero when a verification failed. Every
# process started here is stopped by its PID (trap EXIT).
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$BUILD" && pwd)
BIN=$BUILD/suiro
PI=$BUILD/bench/peer_ingest
RP=$BUILD/bench/ready_poll
POLL_MS=${NI_POLL_MS:-5}
P=${NI_POINTS:-2000}
S=${NI_SECONDS:-3600}
B=100
LATE=${NI_LATE_BP:-100}
SEED=${NI_SEED:-42}
G=${NI_GATEWAYS:-40}
W=${NI_WINDOW:-16}
LINES=${NI_LINES:-5000}
CONC=${NI_CONC:-4}
RWIN=${NI_REDIS_WINDOW:-64}
SYSTEMS=${NI_SYSTEMS:-suiro suiro_plain influxdb victoriametrics redis}
OP=sim
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)

die() { echo "net_ingest: $*" >&2; exit 1; }
say() { echo "net_ingest: $*" >&2; }
[ -x "$BIN" ] || die "no $BIN (build first: cmake -S . -B $BUILD && cmake --build $BUILD)"
[ -x "$PI" ] || die "no $PI (build with -DSR_BUILD_BENCH=ON)"
[ -x "$RP" ] || die "no $RP (build with -DSR_BUILD_BENCH=ON)"

# ---- the peers' programs (Debian packages; installed when missing) ----------
INFLUXD=$(command -v influxd || true)
VMBIN=$(command -v victoria-metrics || true)
REDIS=$(command -v redis-server || true)
RCLI=$(command -v redis-cli || true)
if [ -z "$INFLUXD" ] || [ -z "$VMBIN" ] || [ -z "$REDIS" ] || [ -z "$RCLI" ]; then
  say "a peer is missing; trying: bash scripts/deps.sh --bench"
  bash "$ROOT/scripts/deps.sh" --bench >&2 || true
  INFLUXD=$(command -v influxd || true)
  VMBIN=$(command -v victoria-metrics || true)
  REDIS=$(command -v redis-server || true)
  RCLI=$(command -v redis-cli || true)
fi
for s in $SYSTEMS; do
  case $s in
    suiro|suiro_plain) ;;
    influxdb) [ -n "$INFLUXD" ] || die "influxd (Debian package 'influxdb') is missing; run 'bash scripts/deps.sh --bench' as root" ;;
    victoriametrics) [ -n "$VMBIN" ] || die "victoria-metrics (Debian package 'victoria-metrics') is missing; run 'bash scripts/deps.sh --bench' as root" ;;
    redis) [ -n "$REDIS" ] && [ -n "$RCLI" ] || die "redis-server / redis-cli (Debian package 'redis-server') is missing; run 'bash scripts/deps.sh --bench' as root" ;;
    *) die "unknown system '$s' in NI_SYSTEMS" ;;
  esac
done

T=$(mktemp -d "${TMPDIR:-/tmp}/suiro-netbench-XXXXXX")
. "$ROOT/bench/lib.sh"   # stop_pid, merge, field
PID=   # the one server running at a time
cleanup() {
  if [ -n "$PID" ]; then stop_pid "$PID"; fi
  if [ "${NI_KEEP:-0}" = 1 ]; then say "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_s() { # user+system CPU seconds of a live process
  awk -v hz="$(getconf CLK_TCK)" '{sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz}' "/proc/$1/stat" 2>/dev/null || echo null
}
pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo unknown; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
cpu_pp() { awk -v c="$1" -v n="$2" 'BEGIN { if (c == "null" || c == "" || n + 0 == 0) print "null"; else printf "%.3f", c * 1e6 / n }'; }  # CPU us per value
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0 || a == "" || a == "null") print "null"; else printf "%.3f", a / b }'; }
du_b() { du -sb "$@" 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }          # apparent bytes
du_alloc() { du -s -B1 "$@" 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }    # allocated blocks
# wait_for SECONDS CMD...: run CMD every 10 ms until it succeeds (0) or time is up (1);
# gives up early when the server $PID has exited
wait_for() {
  local limit=$(( $1 * 1000000 )) t0=${EPOCHREALTIME/./}
  shift
  while :; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    kill -0 "$PID" 2>/dev/null || return 1
    [ $(( ${EPOCHREALTIME/./} - t0 )) -lt "$limit" ] || return 1
    sleep 0.01
  done
}

UNIQUE=$((P * S))
NB=$(( (S + B - 1) / B ))
LAST_S=$((1700006400 + S - 1))
LAST_ISO=$(date -u -d "@$LAST_S" +%Y-%m-%dT%H:%M:%S)
DAY_END=$(date -u -d "@$((1700006400 + 86400))" +%Y-%m-%dT%H:%M:%SZ)
load=$(printf '{"points":%d,"seconds":%d,"batch":%d,"late_bp":%d,"seed":%d,"values_unique":%d}' \
  "$P" "$S" "$B" "$LATE" "$SEED" "$UNIQUE")
say "reference data set: $P points x $S s = $UNIQUE values, batches of $B, ${LATE} bp late"

# results, by system
declare -A CPUPP RATE DUR VERIFY BPP BPPA IBPP LBPP IBPPA LBPPA RESTART RESTART_LOGIN
ALL_OK=1

# emit_disk SYSTEM DURABILITY VERIFY RUN_ALLOC RUN_APPARENT DIR EXTRA_JSON [PART=SUBDIR]...
# after the graceful stop: DIR in allocated bytes (du -s -B1: the blocks it
# takes on the disk; the figure the goals use) and apparent bytes (du -sb,
# which counts the holes of sparse files), the same for each part; RUN_* are
# the figures taken while it was still running after the load
emit_disk() {
  local sys=$1 dur=$2 v=$3 run_a=$4 run_b=$5 dir=$6 extra=$7 parts='{}' name sub a b
  shift 7
  a=$(du_alloc "$dir"); b=$(du_b "$dir")
  BPP[$sys]=$(div "$a" "$UNIQUE"); BPPA[$sys]=$(div "$b" "$UNIQUE")
  for pt in "$@"; do
    name=${pt%%=*}; sub=${pt#*=}
    parts=$(merge "$parts" "{\"${name}_bytes_per_point\":$(div "$(du_alloc "$dir/$sub")" "$UNIQUE"),\"${name}_apparent_bytes_per_point\":$(div "$(du_b "$dir/$sub")" "$UNIQUE")}")
  done
  merge "{\"bench\":\"disk_bytes\",\"system\":\"$sys\",\"durability\":\"$dur\"}" "$load" \
    "{\"bytes\":$a,\"bytes_per_point\":${BPP[$sys]},\"apparent_bytes\":$b,\"apparent_bytes_per_point\":${BPPA[$sys]},\"running_bytes_per_point\":$(div "$run_a" "$UNIQUE"),\"running_apparent_bytes_per_point\":$(div "$run_b" "$UNIQUE")}" \
    "$parts" "$extra" "{\"verify\":\"$v\"}"
}
# emit_restart SYSTEM DURABILITY VERIFY SECS EXTRA_JSON
emit_restart() {
  RESTART[$1]=$4
  merge "{\"bench\":\"restart\",\"system\":\"$1\",\"durability\":\"$2\"}" "$load" "{\"secs\":$4,\"poll_ms\":$POLL_MS}" "$5" "{\"verify\":\"$3\"}"
}
# restart_http SYSTEM DURABILITY VERIFY START_FN URL EXPECT COUNT_FN QUERY WORD:
# the restart of an HTTP peer: start it, time the first answer holding
# EXPECT (bench/ready_poll), count what it holds (COUNT_FN, must be
# $UNIQUE), stop it, print the restart line
restart_http() {
  local sys=$1 dur=$2 v=$3 startfn=$4 url=$5 expect=$6 countfn=$7 query=$8 word=$9
  local rp rv=FAILED secs after t0
  t0=$EPOCHREALTIME
  "$startfn"
  rp=$(ready "$t0" --http "$url" --expect "$expect")
  secs=$(fieldn "$rp" ready_s)
  after=$("$countfn")
  [ "$secs" != null ] && [ "$after" = "$UNIQUE" ] && [ "$v" = ok ] && rv=ok
  [ "$rv" = ok ] || say "$sys restart FAILED: poll=$rp $word=$after/$UNIQUE"
  stop_pid "$PID"; PID=
  emit_restart "$sys" "$dur" "$rv" "$secs" \
    "{\"up_s\":$(fieldn "$rp" up_s),\"query_s\":$(fieldn "$rp" query_s),\"polls\":$(fieldn "$rp" attempts),\"query\":\"$query\",\"stored_values_after\":$after}"
  [ "$rv" = ok ] || VERIFY[$sys]=FAILED
}
# ready T0 ARGS...: bench/ready_poll for the server $PID started at T0; its JSON
# line on stdout ({"ready_s":null,..} when it did not answer in time)
ready() {
  local t0=$1 out
  shift
  out=$("$RP" --t0 "$t0" --pid "$PID" --every-ms "$POLL_MS" --timeout 300 "$@") || true
  [ -n "$out" ] || out='{"ready_s":null}'
  echo "$out"
}

# ---- suiro -------------------------------------------------------------------
run_suiro() { # run_suiro [plain]: suiro, or with "plain" suiro_plain (no key_file: the log unencrypted)
  local sys=suiro D K=(--key-file "$T/log.key") sport hport enc="log AES-256-GCM"
  if [ "${1:-}" = plain ]; then sys=suiro_plain; K=(); enc="log not encrypted (no key_file)"; fi
  local dur="sync=always: PUBACK once the log is fdatasynced and the index committed; $enc"
  D="$T/$sys"
  local ppg=$(( (P + G - 1) / G ))
  [ "$ppg" -le 99 ] || die "suiro: $P points need at most 99 per gateway: NI_GATEWAYS >= $(( (P + 98) / 99 ))"
  DUR[$sys]=$dur
  (umask 077; "$PY" -c 'import os; print(os.urandom(32).hex())' > "$T/log.key")
  "$BIN" init "$D" "${K[@]}" >/dev/null
  "$BIN" gwsim sheet --gateways "$G" --points "$ppg" --operator "$OP" > "$T/sheet.csv"
  printf '\n[apps]\nid,name,secret,push_url\nBENCH,Benchmark reader,bench-app-secret-1,\n\n[grants]\napp,datapoint,access\nBENCH,*,read\n' >> "$T/sheet.csv"
  "$BIN" sheet import "$T/sheet.csv" "$D" "${K[@]}" >/dev/null
  # the data point of reference point p: SP<p % G + 1>_<p / G + 1>
  "$PY" -c 'import sys
P, G = int(sys.argv[1]), int(sys.argv[2])
for p in range(P): print("SP%04d_%02d" % (p % G + 1, p // G + 1))' "$P" "$G" > "$T/suiro-ids"
  suiro_start() { # start serve on $D; sets PID, sport, hport
    : > "$T/serve.out"
    "$BIN" serve --data "$D" --mqtt 127.0.0.1:0 --http 127.0.0.1:0 "${K[@]}" > "$T/serve.out" 2>> "$T/serve.err" &
    PID=$!
    wait_for 60 grep -q '^listening http=' "$T/serve.out" || { tail -n 20 "$T/serve.err" >&2; die "suiro serve did not start"; }
    sport=$(sed -n 's/^listening mqtt=.*:\([0-9]*\)$/\1/p' "$T/serve.out" | head -n 1)
    hport=$(sed -n 's/^listening http=.*:\([0-9]*\)$/\1/p' "$T/serve.out" | head -n 1)
  }
  token() {
    curl -sf -X POST -H 'Content-Type: application/json' \
      -d "{\"operatorId\":\"$OP\",\"appId\":\"BENCH\",\"secret\":\"bench-app-secret-1\"}" \
      "http://127.0.0.1:$hport/api/v1/sessions" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["token"])'
  }
  # values the index holds: AP-IF downsampled count per point, 100 points a request
  index_count() {
    local tok
    tok=$(token) || { echo -1; return; }
    "$PY" - "$hport" "$tok" "$T/suiro-ids" "$DAY_END" <<'EOF'
import json, sys, urllib.request, urllib.parse
port, tok, idf, end = sys.argv[1:5]
ids = [l.strip() for l in open(idf) if l.strip()]
n = 0
for i in range(0, len(ids), 100):
    q = [("dataId", d) for d in ids[i:i + 100]] + [("from", "2023-11-15T00:00:00Z"), ("to", end),
                                                  ("interval", "1d"), ("agg", "count")]
    r = urllib.request.Request("http://127.0.0.1:%s/api/v1/stored-values?%s" % (port, urllib.parse.urlencode(q)),
                               headers={"Authorization": "Bearer " + tok})
    for v in json.load(urllib.request.urlopen(r, timeout=60))["values"]:
        n += v["count"]
print(n)
EOF
  }

  say "$sys serve (sync=always, $enc): gwsim --reference, $G gateways, window $W"
  suiro_start
  local gw rc=0
  gw=$("$BIN" gwsim run --port "$sport" --operator "$OP" --gateways "$G" --batch "$B" --window "$W" --reference \
    --ref-points "$P" --ref-seconds "$S" --ref-late-bp "$LATE" --ref-seed "$SEED" 2>"$T/gwsim.err" | tail -n 1) || rc=$?
  [ -n "$gw" ] || gw='{}'
  local cpu; cpu=$(cpu_s "$PID")
  local idx_run; idx_run=$(index_count)
  local run_a run_b; run_a=$(du_alloc "$D"); run_b=$(du_b "$D")
  local t0 t1 s_rc=0
  t0=$EPOCHREALTIME
  kill -TERM "$PID"; wait "$PID" || s_rc=$?; PID=
  t1=$EPOCHREALTIME
  local stop_s; stop_s=$(elapsed "$t0" "$t1")
  # the hash chain's SHA-256 work for this log, timed apart (bench/chain_cost; the chain has no off switch)
  local chain; chain=$("$BUILD/bench/chain_cost" "$D/log" "${K[@]}" 2>/dev/null | tail -n 1) || true
  [ -n "$chain" ] || chain='{}'
  # the log: values and distinct messages of the measurement events
  local stored msgs dup
  read -r stored msgs dup < <("$BIN" replay "$D" "${K[@]}" --kind measurements | "$PY" -c '
import json, sys
v = 0; ids = set(); dup = 0
for l in sys.stdin:
    if not l.strip(): continue
    e = json.loads(l)
    mid = e.get("message_id")
    if mid in ids: dup += 1
    ids.add(mid)
    v += sum(len(p["values"]) for p in e.get("measurements", {}).get("points", []))
print(v, len(ids), dup)')
  local sent_total msgs_total
  sent_total=$(field "$gw" ref_values_sent); msgs_total=$(field "$gw" ref_messages)
  local v=FAILED
  if [ "$rc" = 0 ] && [ "$s_rc" = 0 ] && [ "$(field "$gw" errors)" = 0 ] && [ "$(field "$gw" acked)" = "$msgs_total" ] \
     && [ "$(field "$gw" values_acked)" = "$sent_total" ] && [ "$stored" = "$sent_total" ] && [ "$msgs" = "$msgs_total" ] \
     && [ "$dup" = 0 ] && [ "$idx_run" = "$UNIQUE" ] && [ "$(field "$gw" ref_values_unique)" = "$UNIQUE" ]; then v=ok; fi
  [ "$v" = ok ] || say "$sys verify FAILED: gwsim rc=$rc errors=$(field "$gw" errors) acked=$(field "$gw" acked)/$msgs_total values_acked=$(field "$gw" values_acked)/$sent_total log values=$stored messages=$msgs duplicates=$dup index=$idx_run/$UNIQUE serve_rc=$s_rc; $(tail -n 3 "$T/gwsim.err")"
  VERIFY[$sys]=$v
  RATE[$sys]=$(field "$gw" steady_points_per_s)
  CPUPP[$sys]=$(cpu_pp "$cpu" "${sent_total:-0}")   # the gateways' logins (scrypt) included
  merge "{\"bench\":\"net_ingest\",\"system\":\"$sys\"}" "$load" \
    "{\"durability\":\"$dur\",\"protocol\":\"MQTT 3.1.1 QoS 1, GW_MEASUREMENTS JSON (suiro gwsim run --reference)\",\"gateways\":$G,\"window\":$W,\"events\":${msgs_total:-null},\"points_total\":${sent_total:-null},\"secs\":$(fieldn "$gw" secs),\"points_per_s\":${RATE[$sys]:-null},\"points_per_s_with_logins\":$(fieldn "$gw" points_per_s),\"connect_s\":$(fieldn "$gw" connect_s),\"requests\":$(fieldn "$gw" sent),\"errors\":$(fieldn "$gw" errors),\"puback_p50_ms\":$(fieldn "$gw" puback_p50_ms),\"puback_p99_ms\":$(fieldn "$gw" puback_p99_ms),\"hash\":\"$(field "$gw" ref_hash)\",\"server_cpu_s\":$cpu,\"server_cpu_us_per_point\":${CPUPP[$sys]},\"stored_log_values\":${stored:-null},\"stored_index_values\":${idx_run:-null},\"stop_s\":$stop_s,\"chain_s\":$(fieldn "$chain" chain_s),\"log_blocks\":$(fieldn "$chain" blocks),\"chain_verify\":\"$(field "$chain" verify)\",\"verify\":\"$v\"}"
  IBPP[$sys]=$(div "$(du_alloc "$D/index")" "$UNIQUE"); IBPPA[$sys]=$(div "$(du_b "$D/index")" "$UNIQUE")
  LBPP[$sys]=$(div "$(du_alloc "$D/log")" "$UNIQUE"); LBPPA[$sys]=$(div "$(du_b "$D/log")" "$UNIQUE")
  emit_disk "$sys" "$dur" "$v" "$run_a" "$run_b" "$D" '{"what":"the data directory: log/ (events as received, zstd, encrypted unless suiro_plain) and index/ (LMDB: series chunks, latest values, masters)"}' \
    log=log index=index

  say "$sys: restart"
  # known ports, so the poller can knock from the start as for the peers
  sport=$(free_port); hport=$(free_port)
  : > "$T/serve.out"
  local q0 rp
  q0="dataId=$(head -n 1 "$T/suiro-ids")&from=2023-11-15T00:00:00Z&to=$DAY_END&interval=1d&agg=count"
  t0=$EPOCHREALTIME
  "$BIN" serve --data "$D" --mqtt "127.0.0.1:$sport" --http "127.0.0.1:$hport" "${K[@]}" > "$T/serve.out" 2>> "$T/serve.err" &
  PID=$!
  rp=$(ready "$t0" --http "http://127.0.0.1:$hport/api/v1/stored-values?$q0" --expect "\"count\":$S" \
    --login "http://127.0.0.1:$hport/api/v1/sessions" \
    --login-body "{\"operatorId\":\"$OP\",\"appId\":\"BENCH\",\"secret\":\"bench-app-secret-1\"}")
  local rs ls up secs
  rs=$(fieldn "$rp" ready_s); ls=$(fieldn "$rp" login_s); up=$(fieldn "$rp" up_s)
  secs=null
  [ "$rs" != null ] && [ "$ls" != null ] && secs=$(elapsed "$ls" "$rs")
  # the startup phases the server logged ("serving" line), in ms
  local phases
  phases=$(grep 'msg="serving"' "$T/serve.err" | tail -n 1 | "$PY" -c 'import json, re, sys
l = sys.stdin.read()
print(json.dumps({k: float(v) for k, v in re.findall(r"(\w+_ms)=([0-9.]+)", l)}, separators=(",", ":")))')
  local idx_after; idx_after=$(index_count)
  local rv=FAILED
  [ "$secs" != null ] && [ "$idx_after" = "$UNIQUE" ] && [ "$v" = ok ] && rv=ok
  [ "$rv" = ok ] || say "$sys restart FAILED: poll=$rp index=$idx_after/$UNIQUE"
  stop_pid "$PID"; PID=
  RESTART_LOGIN[$sys]=$rs
  emit_restart "$sys" "$dur" "$rv" "$secs" \
    "{\"secs_with_login\":$rs,\"login_s\":$ls,\"up_s\":$up,\"query_s\":$(fieldn "$rp" query_s),\"polls\":$(fieldn "$rp" attempts),\"startup_ms\":${phases:-null},\"query\":\"POST /api/v1/sessions (timed apart: login_s), then GET /api/v1/stored-values?dataId=<point 0>&interval=1d&agg=count = $S\",\"stored_index_values_after\":$idx_after}"
  [ "$rv" = ok ] || VERIFY[$sys]=FAILED
}

# ---- InfluxDB 1.x ----------------------------------------------------------------
run_influxdb() {
  local dur="wal-fsync-delay=0s (the default): the WAL is fsynced before a write is answered"
  local D="$T/influxdb" hp rp
  DUR[influxdb]=$dur
  hp=$(free_port); rp=$(free_port)
  mkdir -p "$D"
  cat > "$T/influxdb.conf" <<EOF
reporting-disabled = true
bind-address = "127.0.0.1:$rp"
[meta]
  dir = "$D/meta"
[data]
  dir = "$D/data"
  wal-dir = "$D/wal"
  wal-fsync-delay = "0s"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:$hp"
  log-enabled = false
[continuous_queries]
  enabled = false
[logging]
  level = "warn"
EOF
  local U="http://127.0.0.1:$hp"
  influx_start() {
    "$INFLUXD" run -config "$T/influxdb.conf" >> "$T/influxdb.log" 2>&1 &
    PID=$!
  }
  iq() { curl -sf -G "$U/query" --data-urlencode db=bench --data-urlencode "q=$1"; }
  icount() { iq 'SELECT count(value) FROM v' | "$PY" -c 'import json,sys
d = json.load(sys.stdin)
try: print(d["results"][0]["series"][0]["values"][0][1])
except Exception: print(-1)'; }
  local ver; ver=$(pkgver influxdb)
  say "InfluxDB (${ver:-?}): line protocol, $LINES lines a request, $CONC in flight"
  influx_start
  wait_for 60 curl -sf "$U/ping" || { tail -n 20 "$T/influxdb.log" >&2; die "influxd did not start"; }
  curl -sf -XPOST "$U/query" --data-urlencode 'q=CREATE DATABASE bench' >/dev/null
  local out rc=0
  out=$("$PI" --influx "$U" --points "$P" --seconds "$S" --late-bp "$LATE" --seed "$SEED" --lines "$LINES" --conc "$CONC" 2>"$T/pi-influxdb.err") || rc=$?
  [ -n "$out" ] || out='{}'
  local cpu; cpu=$(cpu_s "$PID")
  local n; n=$(icount)
  local run_a run_b; run_a=$(du_alloc "$D"); run_b=$(du_b "$D")
  local t0 t1; t0=$EPOCHREALTIME; stop_pid "$PID"; PID=; t1=$EPOCHREALTIME
  local v=FAILED
  if [ "$rc" = 0 ] && [ "$n" = "$UNIQUE" ]; then v=ok; fi
  [ "$v" = ok ] || say "influxdb verify FAILED: peer_ingest rc=$rc count=$n/$UNIQUE; $(tail -n 3 "$T/pi-influxdb.err")"
  VERIFY[influxdb]=$v
  RATE[influxdb]=$(field "$out" points_per_s)
  CPUPP[influxdb]=$(cpu_pp "$cpu" "$(field "$out" points_total)")
  merge "$out" "$load" "{\"durability\":\"$dur\",\"version\":\"${ver:-unknown}\",\"server_cpu_s\":$cpu,\"server_cpu_us_per_point\":${CPUPP[influxdb]},\"stored_values\":$n,\"stop_s\":$(elapsed "$t0" "$t1"),\"verify\":\"$v\"}"
  emit_disk influxdb "$dur" "$v" "$run_a" "$run_b" "$D" \
    '{"what":"wal/ (writes not yet snapshotted: a stop does not snapshot the cache), data/ (TSM files and the series file, whose 8 segments are preallocated sparse 4 MiB files), meta/"}' \
    wal=wal data=data

  say "InfluxDB: restart"
  restart_http influxdb "$dur" "$v" influx_start \
    "$U/query?db=bench&q=$("$PY" -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "SELECT last(value) FROM v WHERE p='P00000'")" \
    "\"$LAST_ISO" icount "SELECT last(value) FROM v WHERE p='P00000'" count
}

# ---- VictoriaMetrics -----------------------------------------------------------------
run_victoriametrics() {
  local dur="acknowledges before fsync: rows are buffered in memory and written about once a second; no fsync-always setting"
  local D="$T/victoriametrics" hp
  DUR[victoriametrics]=$dur
  hp=$(free_port)
  local U="http://127.0.0.1:$hp"
  # -retentionPeriod: the data set is from 2023 (the default keeps 1 month);
  # -dedup.minScrapeInterval=1ms keeps one value per series and millisecond,
  # as InfluxDB and suiro do (the default keeps the late duplicates too)
  vm_start() {
    "$VMBIN" -storageDataPath "$D" -httpListenAddr "127.0.0.1:$hp" -retentionPeriod 100y \
      -dedup.minScrapeInterval 1ms -loggerLevel WARN >> "$T/victoriametrics.log" 2>&1 &
    PID=$!
  }
  vcount() {
    curl -sf "$U/internal/force_flush" >/dev/null || true
    curl -sf "$U/api/v1/export/csv" --data-urlencode 'format=__timestamp__:unix_ms' \
      --data-urlencode 'match[]={__name__="v_value"}' --data-urlencode 'start=2023-11-14T00:00:00Z' \
      --data-urlencode "end=$DAY_END" | wc -l
  }
  local ver; ver=$(pkgver victoria-metrics)
  say "VictoriaMetrics (${ver:-?}): line protocol, $LINES lines a request, $CONC in flight"
  vm_start
  wait_for 60 curl -sf "$U/health" || { tail -n 20 "$T/victoriametrics.log" >&2; die "victoria-metrics did not start"; }
  local out rc=0
  out=$("$PI" --vm "$U" --points "$P" --seconds "$S" --late-bp "$LATE" --seed "$SEED" --lines "$LINES" --conc "$CONC" 2>"$T/pi-vm.err") || rc=$?
  [ -n "$out" ] || out='{}'
  local cpu; cpu=$(cpu_s "$PID")
  local n; n=$(vcount)
  local run_a run_b; run_a=$(du_alloc "$D"); run_b=$(du_b "$D")
  local t0 t1; t0=$EPOCHREALTIME; stop_pid "$PID"; PID=; t1=$EPOCHREALTIME
  local v=FAILED
  if [ "$rc" = 0 ] && [ "$n" = "$UNIQUE" ]; then v=ok; fi
  [ "$v" = ok ] || say "victoriametrics verify FAILED: peer_ingest rc=$rc exported=$n/$UNIQUE; $(tail -n 3 "$T/pi-vm.err")"
  VERIFY[victoriametrics]=$v
  RATE[victoriametrics]=$(field "$out" points_per_s)
  CPUPP[victoriametrics]=$(cpu_pp "$cpu" "$(field "$out" points_total)")
  merge "$out" "$load" "{\"durability\":\"$dur\",\"version\":\"${ver:-unknown}\",\"dedup_min_scrape_interval\":\"1ms\",\"server_cpu_s\":$cpu,\"server_cpu_us_per_point\":${CPUPP[victoriametrics]},\"stored_values\":$n,\"stop_s\":$(elapsed "$t0" "$t1"),\"verify\":\"$v\"}"
  emit_disk victoriametrics "$dur" "$v" "$run_a" "$run_b" "$D" \
    '{"what":"data/ (samples), indexdb/ (series index), cache/ (caches saved at the stop)"}' \
    data=data indexdb=indexdb cache=cache

  say "VictoriaMetrics: restart"
  restart_http victoriametrics "$dur" "$v" vm_start \
    "$U/api/v1/query?query=$("$PY" -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' 'count_over_time(v_value{p="P00000"}[1d])')&time=$((LAST_S + 1))" \
    "\"$S\"]" vcount "count_over_time(v_value{p='P00000'}[1d])" exported
}

# ---- Redis 7 Streams, appendfsync always ---------------------------------------------
run_redis() {
  local dur="appendonly yes, appendfsync always: the AOF is fsynced before replies are sent (defaults: AOF off, everysec)"
  local D="$T/redis" port
  DUR[redis]=$dur
  port=$(free_port)
  mkdir -p "$D"
  redis_start() {
    "$REDIS" --port "$port" --bind 127.0.0.1 --dir "$D" --appendonly yes --appendfsync always --save "" \
      --daemonize no --logfile "$T/redis.log" &
    PID=$!
  }
  rc_() { "$RCLI" -p "$port" "$@"; }
  # entries and values held: every stream read back with XRANGE
  rcount() {
    rc_ EVAL "local e, n = 0, 0
for p = 0, tonumber(ARGV[1]) - 1 do
  for _, x in ipairs(redis.call('XRANGE', string.format('s:P%05d', p), '-', '+')) do
    e = e + 1
    local f = x[2]
    for i = 1, #f, 2 do
      if f[i] == 'v' then local _, c = string.gsub(f[i + 1], ',', ''); n = n + c + 1 end
    end
  end
end
return {e, n}" 0 "$P" | tr '\n' ' '
    echo
  }
  local ver; ver=$(pkgver redis-server)
  say "Redis (${ver:-?}) streams: $CONC connections, $RWIN pipelined each"
  redis_start
  wait_for 60 rc_ PING || { tail -n 20 "$T/redis.log" >&2; die "redis-server did not start"; }
  local out rc=0
  out=$("$PI" --redis "127.0.0.1:$port" --points "$P" --seconds "$S" --late-bp "$LATE" --seed "$SEED" --conc "$CONC" --window "$RWIN" 2>"$T/pi-redis.err") || rc=$?
  [ -n "$out" ] || out='{}'
  local cpu; cpu=$(cpu_s "$PID")
  local e n; read -r e n < <(rcount)
  local run_a run_b; run_a=$(du_alloc "$D"); run_b=$(du_b "$D")
  local t0 t1; t0=$EPOCHREALTIME; stop_pid "$PID"; PID=; t1=$EPOCHREALTIME
  local sent events; sent=$(field "$out" points_total); events=$(field "$out" events)
  local v=FAILED
  if [ "$rc" = 0 ] && [ -n "$sent" ] && [ "$n" = "$sent" ] && [ "$e" = "$events" ]; then v=ok; fi
  [ "$v" = ok ] || say "redis verify FAILED: peer_ingest rc=$rc entries=$e/$events values=$n/$sent; $(tail -n 3 "$T/pi-redis.err")"
  VERIFY[redis]=$v
  RATE[redis]=$(field "$out" points_per_s)
  CPUPP[redis]=$(cpu_pp "$cpu" "$(field "$out" points_total)")
  merge "$out" "$load" "{\"durability\":\"$dur\",\"version\":\"${ver:-unknown}\",\"server_cpu_s\":$cpu,\"server_cpu_us_per_point\":${CPUPP[redis]},\"stored_entries\":${e:-null},\"stored_values\":${n:-null},\"note\":\"an append-only log: it keeps every value sent, the late duplicates too\",\"stop_s\":$(elapsed "$t0" "$t1"),\"verify\":\"$v\"}"
  emit_disk redis "$dur" "$v" "$run_a" "$run_b" "$D" '{"what":"appendonlydir/ (the AOF: the XADD commands as sent); no RDB (save \"\")"}'

  say "Redis: restart (AOF replay)"
  local rp rv=FAILED secs
  t0=$EPOCHREALTIME
  redis_start
  rp=$(ready "$t0" --redis "127.0.0.1:$port" --cmd "XLEN s:P00000" --expect ":$NB")
  secs=$(fieldn "$rp" ready_s)
  local e2 n2; read -r e2 n2 < <(rcount)
  [ "$secs" != null ] && [ "$n2" = "$n" ] && [ "$e2" = "$e" ] && [ "$v" = ok ] && rv=ok
  [ "$rv" = ok ] || say "redis restart FAILED: poll=$rp entries=$e2/$e values=$n2/$n"
  stop_pid "$PID"; PID=
  emit_restart redis "$dur" "$rv" "$secs" \
    "{\"up_s\":$(fieldn "$rp" up_s),\"query_s\":$(fieldn "$rp" query_s),\"polls\":$(fieldn "$rp" attempts),\"query\":\"XLEN s:P00000\",\"stored_values_after\":${n2:-null}}"
  [ "$rv" = ok ] || VERIFY[redis]=FAILED
}

for s in $SYSTEMS; do
  if [ "$s" = suiro_plain ]; then run_suiro plain; else "run_$s"; fi
done

# ---- ratios against the goals of issue #6 -------------------------------------------
for s in $SYSTEMS; do [ "${VERIFY[$s]:-FAILED}" = ok ] || ALL_OK=0; done
both_ok() { local v=ok; for s in "$@"; do [ "${VERIFY[$s]:-FAILED}" = ok ] || v=FAILED; done; echo $v; }
durs() { # {"system":"durability",...} for the systems run
  local a=()
  for s in $SYSTEMS; do a+=("{\"$s\":\"${DUR[$s]}\"}"); done
  merge "${a[@]}"
}
has() { case " $SYSTEMS " in *" $1 "*) return 0 ;; esac; return 1; }
met() { awk -v v="$1" -v op="$2" -v g="$3" 'BEGIN { if (v == "null" || v == "") print "null";
  else if (op == ">=") print (v + 0 >= g + 0) ? "true" : "false";
  else if (op == "<")  print (v + 0 <  g + 0) ? "true" : "false";
  else print (v + 0 <= g + 0) ? "true" : "false" }'; }
if has suiro; then
  d=$(durs)
  r='{"bench":"net_ingest_ratio","metric":"durable points/s (suiro: steady rate after the gateway logins)"}'
  for s in influxdb victoriametrics redis; do
    has "$s" || continue
    x=$(div "${RATE[suiro]:-}" "${RATE[$s]:-}")
    r=$(merge "$r" "{\"suiro_vs_$s\":$x,\"${s}_points_per_s\":${RATE[$s]:-null}}")
  done
  r=$(merge "$r" "{\"suiro_points_per_s\":${RATE[suiro]:-null}}")
  # server CPU per value: steadier than the rates when the machine is shared
  c='{}'
  for s in $SYSTEMS; do c=$(merge "$c" "{\"$s\":${CPUPP[$s]:-null}}"); done
  r=$(merge "$r" "{\"server_cpu_us_per_point\":$c}")
  has victoriametrics && r=$(merge "$r" "{\"goal_vs_victoriametrics\":\">= 1.5\",\"met_vs_victoriametrics\":$(met "$(field "$r" suiro_vs_victoriametrics)" ">=" 1.5)}")
  has influxdb && r=$(merge "$r" "{\"goal_vs_influxdb\":\">= 5\",\"met_vs_influxdb\":$(met "$(field "$r" suiro_vs_influxdb)" ">=" 5)}")
  # shellcheck disable=SC2086
  merge "$r" "{\"durability\":$d,\"verify\":\"$(both_ok $SYSTEMS)\"}"

  r='{"bench":"disk_bytes_ratio","metric":"bytes on disk per distinct value after a graceful stop: allocated (du -s -B1); *_apparent: du -sb"}'
  r=$(merge "$r" "{\"suiro_bytes_per_point\":${BPP[suiro]:-null},\"suiro_log_bytes_per_point\":${LBPP[suiro]:-null},\"suiro_index_bytes_per_point\":${IBPP[suiro]:-null},\"suiro_apparent_bytes_per_point\":${BPPA[suiro]:-null},\"suiro_log_apparent_bytes_per_point\":${LBPPA[suiro]:-null},\"suiro_index_apparent_bytes_per_point\":${IBPPA[suiro]:-null}}")
  for s in influxdb victoriametrics redis; do
    has "$s" || continue
    r=$(merge "$r" "{\"${s}_bytes_per_point\":${BPP[$s]:-null},\"${s}_apparent_bytes_per_point\":${BPPA[$s]:-null},\"suiro_vs_$s\":$(div "${BPP[suiro]:-}" "${BPP[$s]:-}"),\"suiro_vs_${s}_apparent\":$(div "${BPPA[suiro]:-}" "${BPPA[$s]:-}")}")
  done
  if has victoriametrics; then
    r=$(merge "$r" "{\"suiro_index_vs_victoriametrics\":$(div "${IBPP[suiro]:-}" "${BPP[victoriametrics]:-}"),\"goal_index_vs_victoriametrics\":\"< 1\",\"met_index_vs_victoriametrics\":$(met "$(div "${IBPP[suiro]:-}" "${BPP[victoriametrics]:-}")" "<" 1)}")
  fi
  if has influxdb; then
    r=$(merge "$r" "{\"suiro_log_index_vs_influxdb\":$(div "${BPP[suiro]:-}" "${BPP[influxdb]:-}"),\"goal_log_index_vs_influxdb\":\"<= 0.5\",\"met_log_index_vs_influxdb\":$(met "$(div "${BPP[suiro]:-}" "${BPP[influxdb]:-}")" "<=" 0.5)}")
  fi
  merge "$r" "{\"durability\":$d,\"verify\":\"$(both_ok $SYSTEMS)\"}"

  r="{\"bench\":\"restart_ratio\",\"metric\":\"seconds from start to the first query answered with the loaded data (bench/ready_poll every $POLL_MS ms, the same for every system); suiro without its app login's round trip (one scrypt check), which *_with_login includes\"}"
  r=$(merge "$r" "{\"suiro_secs\":${RESTART[suiro]:-null},\"suiro_secs_with_login\":${RESTART_LOGIN[suiro]:-null},\"poll_ms\":$POLL_MS}")
  for s in influxdb victoriametrics redis; do
    has "$s" || continue
    r=$(merge "$r" "{\"${s}_secs\":${RESTART[$s]:-null},\"suiro_vs_$s\":$(div "${RESTART[suiro]:-}" "${RESTART[$s]:-}"),\"suiro_with_login_vs_$s\":$(div "${RESTART_LOGIN[suiro]:-}" "${RESTART[$s]:-}")}")
  done
  has victoriametrics && r=$(merge "$r" "{\"goal_vs_victoriametrics\":\"<= 1\",\"met_vs_victoriametrics\":$(met "$(field "$r" suiro_vs_victoriametrics)" "<=" 1)}")
  merge "$r" "{\"durability\":$d,\"verify\":\"$(both_ok $SYSTEMS)\"}"
fi
[ "$ALL_OK" = 1 ] || { say "a verification FAILED (see the lines above)"; exit 1; }
