#!/usr/bin/env bash
# bench/gw_ingest.sh BUILD -- GW-IF ingest over MQTT: `suiro serve` against
# Mosquitto 2.0 under the same `suiro gwsim run` load (QoS 1, N gateways each
# sending K GW_MEASUREMENTS messages of B values, at most W unacknowledged).
#
#   bash bench/gw_ingest.sh build          (bench/run.sh calls it so)
#
# Environment (defaults in brackets): GW_N gateways [100], GW_POINTS points
# per gateway [10], GW_BATCH values per message [100], GW_MSGS messages per
# gateway [200], GW_WINDOW unacknowledged messages per gateway [20],
# GW_ENC=1 encrypt the log with a fresh key [1], GW_PERF=FILE record
# `perf record -g` of the suiro server for GW_PERF_S seconds [10], from
# GW_PERF_DELAY [3] seconds after it listens, into FILE (GW_PERF_OPTS
# replaces -g, e.g. "--call-graph dwarf -F 250").
#
# Prints three JSON lines on stdout:
#   {"bench":"gw_ingest","system":"suiro","sync":"always",...gwsim figures,
#    "stored_values":..,"expected_values":..,"verify":"ok"|"FAILED"}
#   {"bench":"gw_ingest","system":"mosquitto","durability":"acked from memory,
#    persisted on autosave",...gwsim figures,"verify":..}
#   {"bench":"gw_ingest_ratio","suiro_steady_msg_per_s":..,"mosquitto_steady_msg_per_s":..,"ratio":..,...}
# The ratio compares steady rates, measured by gwsim from the moment every
# gateway is logged in: suiro checks an scrypt hash per login (~50 ms each on
# the server's thread pool), Mosquitto here authenticates nobody; the rates
# including the logins are printed too. Mosquitto has no
# subscriber, so it acknowledges and drops each message: its figure is the
# cost of MQTT alone, an upper bound for any broker in front of a store.
# Every process started here is stopped by its PID (trap EXIT).
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$(cd "$BUILD" && pwd)/suiro
GW_N=${GW_N:-100}
GW_POINTS=${GW_POINTS:-10}
GW_BATCH=${GW_BATCH:-100}
GW_MSGS=${GW_MSGS:-200}
GW_WINDOW=${GW_WINDOW:-20}
GW_ENC=${GW_ENC:-1}
GW_PERF=${GW_PERF:-}
GW_PERF_S=${GW_PERF_S:-10}
OP=sim
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)

die() { echo "gw_ingest: $*" >&2; exit 1; }
[ -x "$BIN" ] || die "no $BIN (build first: cmake -S . -B $BUILD && cmake --build $BUILD)"

find_mosquitto() { command -v mosquitto 2>/dev/null || { [ -x /usr/sbin/mosquitto ] && echo /usr/sbin/mosquitto; } || true; }
MOSQ=$(find_mosquitto)
if [ -z "$MOSQ" ]; then
  echo "gw_ingest: mosquitto is missing; trying: bash scripts/deps.sh --bench" >&2
  bash "$ROOT/scripts/deps.sh" --bench >&2 || true
  MOSQ=$(find_mosquitto)
  [ -n "$MOSQ" ] || die "mosquitto (Debian package 'mosquitto', 2.0) is not installed and could not be installed; run 'bash scripts/deps.sh --bench' as root"
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/suiro-gwbench-XXXXXX")
SRV= MQ= PERF=
cleanup() {
  for p in $PERF $SRV $MQ; do
    if kill -0 "$p" 2>/dev/null; then kill -TERM "$p" 2>/dev/null || true; fi
  done
  for p in $PERF $SRV $MQ; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$p" 2>/dev/null; then kill -KILL "$p" 2>/dev/null || true; fi
  done
  rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# merge JSON objects left to right (later keys win), compact, key order kept
merge() {
  if command -v jq >/dev/null 2>&1; then
    local args=() i=0 expr=
    for j in "$@"; do args+=(--argjson "a$i" "$j"); expr+="${expr:+ + }\$a$i"; i=$((i + 1)); done
    jq -cn "${args[@]}" "$expr"
  else
    "$PY" -c 'import json,sys
d={}
for a in sys.argv[1:]: d.update(json.loads(a))
print(json.dumps(d,separators=(",",":")))' "$@"
  fi
}
field() { "$PY" -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2], ""))' "$1" "$2"; }
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_s() { # user+system CPU seconds of a live process
  awk -v hz="$(getconf CLK_TCK)" '{sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz}' "/proc/$1/stat" 2>/dev/null || echo null
}
gwsim() { # gwsim run against port $1; prints its JSON line (or {} when it printed none)
  local line rc=0
  line=$("$BIN" gwsim run --port "$1" --operator "$OP" --gateways "$GW_N" --points "$GW_POINTS" \
    --batch "$GW_BATCH" --messages "$GW_MSGS" --window "$GW_WINDOW" 2>"$T/gwsim-$2.err" | tail -n 1) || rc=$?
  [ -n "$line" ] || line='{}'
  merge "$line" "{\"gwsim_rc\":$rc}"
}

total=$((GW_N * GW_MSGS))
load=$(printf '{"gateways":%d,"points":%d,"batch":%d,"messages_per_gateway":%d,"window":%d,"qos":1}' \
  "$GW_N" "$GW_POINTS" "$GW_BATCH" "$GW_MSGS" "$GW_WINDOW")

# ---- suiro -----------------------------------------------------------------
D="$T/suiro-data"
K=()
if [ "$GW_ENC" = 1 ]; then
  (umask 077; "$PY" -c 'import os; print(os.urandom(32).hex())' > "$T/log.key")
  K=(--key-file "$T/log.key")
fi
"$BIN" init "$D" "${K[@]}" >/dev/null
"$BIN" gwsim sheet --gateways "$GW_N" --points "$GW_POINTS" --operator "$OP" > "$T/sheet.csv"
"$BIN" sheet import "$T/sheet.csv" "$D" "${K[@]}" >/dev/null
# a second operator for the paced run (its own messageIds, nothing a duplicate)
PACE_N=$(( GW_N < 100 ? GW_N : 100 ))
"$BIN" gwsim sheet --gateways "$PACE_N" --points "$GW_POINTS" --operator simp > "$T/sheet-paced.csv"
"$BIN" sheet import "$T/sheet-paced.csv" "$D" "${K[@]}" >/dev/null
echo "gw_ingest: suiro serve, $GW_N gateways x $GW_MSGS messages x $GW_BATCH values (window $GW_WINDOW)" >&2
"$BIN" serve --data "$D" --mqtt 127.0.0.1:0 --http 127.0.0.1:0 "${K[@]}" > "$T/serve.out" 2> "$T/serve.err" &
SRV=$!
for _ in $(seq 100); do grep -q '^listening' "$T/serve.out" 2>/dev/null && break; kill -0 "$SRV" 2>/dev/null || break; sleep 0.1; done
grep -q '^listening' "$T/serve.out" || { tail -n 20 "$T/serve.err" >&2; die "suiro serve did not start"; }
SPORT=$(sed -n 's/^listening mqtt=.*:\([0-9]*\)$/\1/p' "$T/serve.out" | head -n 1)
if [ -n "$GW_PERF" ]; then
  ( sleep "${GW_PERF_DELAY:-3}"; exec perf record -q ${GW_PERF_OPTS:--g} -o "$GW_PERF" -p "$SRV" -- sleep "$GW_PERF_S" ) >"$T/perf.log" 2>&1 &
  PERF=$!
fi
s_json=$(gwsim "$SPORT" suiro)
s_cpu=$(cpu_s "$SRV")
if [ -n "$PERF" ]; then wait "$PERF" || echo "gw_ingest: perf record failed: $(tail -n 3 "$T/perf.log")" >&2; PERF=; fi
# PUBACK latency at half the steady rate (issue #4: p99 <= 5 ms): PACE_N
# gateways each sending one message every PACE_N / (rate / 2) seconds for ~10 s
steady_now=$(field "$s_json" steady_msg_per_s)
p_json='{}'
if [ -n "$steady_now" ] && [ "${steady_now%.*}" -gt 0 ] 2>/dev/null; then
  half=$(( ${steady_now%.*} / 2 ))
  [ "$half" -ge 1 ] || half=1
  iv=$("$PY" -c "print(round($PACE_N * 1000.0 / $half, 3))")
  pm=$(( half * 10 / PACE_N )); [ "$pm" -ge 5 ] || pm=5
  echo "gw_ingest: paced run, $PACE_N gateways x one message every $iv ms (~$half msg/s, half the steady rate)" >&2
  p_json=$("$BIN" gwsim run --port "$SPORT" --operator simp --gateways "$PACE_N" --points "$GW_POINTS" \
    --batch "$GW_BATCH" --messages "$pm" --window 4 --interval-ms "$iv" 2>"$T/gwsim-paced.err" | tail -n 1) || true
  [ -n "$p_json" ] || p_json='{}'
  p_acked=$(field "$p_json" acked)
  pverify=FAILED
  [ "${p_acked:-0}" = "$(( pm * PACE_N ))" ] && [ "$(field "$p_json" errors)" = 0 ] && pverify=ok
  merge "$p_json" "{\"bench\":\"gw_ingest_paced\",\"system\":\"suiro\",\"sync\":\"always\",\"target_msg_per_s\":$half,\"interval_ms\":$iv,\"goal_puback_p99_ms\":5,\"verify\":\"$pverify\"}"
fi
kill -TERM "$SRV"
s_rc=0
wait "$SRV" || s_rc=$?
SRV=
[ "$s_rc" = 0 ] || { echo "gw_ingest: suiro serve exited $s_rc after SIGTERM" >&2; tail -n 20 "$T/serve.err" >&2; }
# what the log holds: values and distinct messages of the measurement events
read -r stored msgs dup < <("$BIN" replay "$D" "${K[@]}" --operator "$OP" --kind measurements | "$PY" -c '
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
s_acked=$(field "$s_json" acked)
expected=$(( ${s_acked:-0} * GW_BATCH ))
verify=FAILED
if [ "${s_acked:-0}" = "$total" ] && [ "$stored" = "$expected" ] && [ "$msgs" = "$total" ] && [ "$dup" = 0 ] \
   && [ "$s_rc" = 0 ] && [ "$(field "$s_json" errors)" = 0 ]; then verify=ok; fi
[ "$verify" = ok ] || echo "gw_ingest: suiro verify FAILED: acked=${s_acked:-?}/$total stored_values=$stored expected=$expected messages=$msgs duplicates=$dup serve_rc=$s_rc" >&2
enc=$([ "$GW_ENC" = 1 ] && echo '"aes-256-gcm"' || echo null)
merge '{"bench":"gw_ingest","system":"suiro","sync":"always"}' "$load" "$s_json" \
  "{\"bench\":\"gw_ingest\",\"enc\":$enc,\"server_cpu_s\":$s_cpu,\"stored_values\":$stored,\"stored_messages\":$msgs,\"expected_values\":$expected,\"verify\":\"$verify\"}"

# ---- mosquitto ---------------------------------------------------------------
MPORT=$(free_port)
mkdir -p "$T/mosq"
{
  echo "listener $MPORT 127.0.0.1"
  echo "allow_anonymous true"
  echo "persistence true"
  echo "persistence_location $T/mosq/"
  echo "autosave_interval 1"
  echo "log_dest stderr"
  # as root, mosquitto would switch to user 'mosquitto', who cannot write $T
  if [ "$(id -u)" = 0 ]; then echo "user root"; fi
} > "$T/mosquitto.conf"
mver=$("$MOSQ" -h 2>/dev/null | sed -n 's/^mosquitto version \([^ ]*\).*/\1/p' | head -n 1 || true)
echo "gw_ingest: mosquitto ${mver:-?}, same load" >&2
"$MOSQ" -c "$T/mosquitto.conf" > "$T/mosq.out" 2> "$T/mosq.err" &
MQ=$!
up=0
for _ in $(seq 100); do
  kill -0 "$MQ" 2>/dev/null || break
  if (exec 3<>"/dev/tcp/127.0.0.1/$MPORT") 2>/dev/null; then up=1; break; fi
  sleep 0.1
done
[ "$up" = 1 ] || { tail -n 20 "$T/mosq.err" >&2; die "mosquitto did not start"; }
m_json=$(gwsim "$MPORT" mosquitto)
m_cpu=$(cpu_s "$MQ")
kill -TERM "$MQ"
wait "$MQ" || true
MQ=
m_acked=$(field "$m_json" acked)
mverify=FAILED
[ "${m_acked:-0}" = "$total" ] && [ "$(field "$m_json" errors)" = 0 ] && mverify=ok
[ "$mverify" = ok ] || echo "gw_ingest: mosquitto run FAILED: acked=${m_acked:-?}/$total; $(tail -n 3 "$T/gwsim-mosquitto.err")" >&2
merge '{"bench":"gw_ingest","system":"mosquitto","durability":"acked from memory, persisted on autosave"}' "$load" "$m_json" \
  "{\"bench\":\"gw_ingest\",\"version\":\"${mver:-unknown}\",\"autosave_interval_s\":1,\"subscribers\":0,\"server_cpu_s\":$m_cpu,\"verify\":\"$mverify\"}"

# ---- ratio -------------------------------------------------------------------
# steady rates: from the moment every gateway is logged in (suiro checks an
# scrypt hash per login, Mosquitto authenticates nobody), both from gwsim
sr=$(field "$s_json" steady_msg_per_s)
mr=$(field "$m_json" steady_msg_per_s)
sa=$(field "$s_json" msg_per_s)
ma=$(field "$m_json" msg_per_s)
ratio=$("$PY" -c 'import sys
a, b = sys.argv[1], sys.argv[2]
print(round(float(a) / float(b), 3) if a and b and float(b) > 0 else "null")' "$sr" "$mr")
printf '{"bench":"gw_ingest_ratio","suiro_steady_msg_per_s":%s,"mosquitto_steady_msg_per_s":%s,"ratio":%s,"suiro_msg_per_s_with_logins":%s,"mosquitto_msg_per_s":%s}\n' \
  "${sr:-null}" "${mr:-null}" "$ratio" "${sa:-null}" "${ma:-null}"
[ "$verify" = ok ] && [ "$mverify" = ok ]
