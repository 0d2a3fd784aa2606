# bench/lib.sh -- the shell helpers the benchmark scripts share (sourced,
# after PY is set): stopping a server by its PID, and the JSON lines' merge
# and field reads. One copy, so the scripts cannot drift apart.

# stop_pid PID: SIGTERM, wait up to 60 s, then SIGKILL; nothing if PID is
# empty or gone.
stop_pid() {
  local p=$1
  [ -n "$p" ] || return 0
  kill -0 "$p" 2>/dev/null || return 0
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 600); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$p" 2>/dev/null; then kill -KILL "$p" 2>/dev/null || true; fi
  wait "$p" 2>/dev/null || true
}

# merge JSON objects left to right (later keys win), compact, key order kept
merge() {
  "$PY" -c 'import json,sys
d={}
for a in sys.argv[1:]: d.update(json.loads(a))
print(json.dumps(d,separators=(",",":")))' "$@"
}

# field JSON KEY: the value as text, "" when missing; fieldn: null when missing
field() { "$PY" -c 'import json,sys
v = json.loads(sys.argv[1]).get(sys.argv[2])
print("" if v is None else v)' "$1" "$2"; }
fieldn() { local v; v=$(field "$1" "$2"); echo "${v:-null}"; }

# ---- AP-IF latest-value runs (bench/ap_latest_ab.sh, bench/ap_audit_cost.sh) --
# One copy of serving, loading and stopping a server for the AP-IF A/B
# scripts; they set T (their temporary directory) and SRV before use.

# ap_cpu_s PID: the process's CPU seconds so far (user + system, all threads)
ap_cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{sub(/^.*\) /, ""); printf "%.3f", ($12 + $13) / hz}' "/proc/$1/stat"; }

# ap_serve BIN DIR CONFIG [PREFIX...]: start BIN serve on DIR (CONFIG: an ini
# file, or "" for none), under PREFIX (e.g. valgrind ...); SRV its pid,
# PORT its HTTP port once it listens (bounded wait)
ap_serve() {
  local bin=$1 dir=$2 cfg=$3 c=()
  shift 3
  [ -n "$cfg" ] && c=(--config "$cfg")
  rm -f "$T/out"
  "$@" "$bin" serve "${c[@]}" --data "$dir" --mqtt 127.0.0.1:0 --http 127.0.0.1:0 > "$T/out" 2> "$T/err" &
  SRV=$!
  for _ in $(seq 1200); do grep -q '^listening http' "$T/out" 2>/dev/null && break; sleep 0.1; done
  PORT=$(sed -n 's/^listening http=.*:\([0-9]*\)$/\1/p' "$T/out" | head -n 1)
  [ -n "$PORT" ] || { tail -n 5 "$T/err" >&2; exit 1; }
}

# ap_stop: SIGINT to SRV (a clean stop: what is held is written), wait
ap_stop() { kill -INT "$SRV"; wait "$SRV" 2>/dev/null || true; SRV=; }

# ap_load BIN SECONDS CONNECTIONS [RATE]: apsim's result line (the latest
# value of P001); RATE: paced, RATE requests a second in all (apsim --rate)
ap_load() {
  "$1" apsim load --url "http://127.0.0.1:$PORT" --operator demo --app APP001 --secret demo-app001-secret \
    --what latest --data-id P001 --duration "$2" --connections "$3" ${4:+--rate "$4"} </dev/null 2>/dev/null |
    tail -n 1
}

# ap_make_data BIN DIR: `suiro init --demo` and one value of P001 through
# the GW-IF HTTP binding
ap_make_data() {
  "$1" init --demo "$2" >/dev/null
  ap_serve "$1" "$2" ""
  local tok
  tok=$(curl -sf -X POST "http://127.0.0.1:$PORT/gw/v1/sessions" -H 'Content-Type: application/json' \
    -d '{"operatorId":"demo","gatewayId":"GW001","secret":"demo-gw001-secret"}' |
    "$PY" -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  curl -sf -X POST "http://127.0.0.1:$PORT/gw/v1/measurements" -H 'Content-Type: application/json' \
    -H "Authorization: Bearer $tok" -d '{"header":{"messageType":"GW_MEASUREMENTS","messageId":"ab1",
    "timestamp":"2026-11-22T00:00:00.000Z"},"body":{"values":[{"dataId":"P001","timestamp":"2026-11-22T00:00:00.000Z",
    "value":12.5,"quality":"GOOD"}]}}' >/dev/null
  ap_stop
}
