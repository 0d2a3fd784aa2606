#!/usr/bin/env bash
# `make run`: the server on a local data directory, fed by the gateway
# simulator. The demo operator ("demo", from the set-up sheet) and a simulated
# operator ("sim": 2 gateways x 5 points) are registered; the log is encrypted
# with a key kept outside the data directory. Ctrl-C stops both (by PID).
set -euo pipefail
BUILD=${1:-build}
BIN="$BUILD/suiro"
DATA=./suiro-data
KEYS=./suiro-keys
PORT=${SUIRO_MQTT_PORT:-1883}
mkdir -p "$KEYS"
chmod 700 "$KEYS"
if [ ! -s "$KEYS/log.key" ]; then
  (umask 077; openssl rand -hex 32 > "$KEYS/log.key")
  echo "created a log key: $KEYS/log.key (keep it outside the data directory)"
fi
K=(--key-file "$KEYS/log.key")
"$BIN" init --demo "$DATA" "${K[@]}"
"$BIN" gwsim sheet --gateways 2 --points 5 --operator sim > "$KEYS/sim-sheet.csv"
"$BIN" sheet import "$KEYS/sim-sheet.csv" "$DATA" "${K[@]}"

"$BIN" serve --data "$DATA" --mqtt "127.0.0.1:$PORT" "${K[@]}" > "$KEYS/serve.out" &
SRV=$!
GW=
cleanup() {
  for p in $GW; do kill "$p" 2>/dev/null || true; done
  kill -TERM "$SRV" 2>/dev/null || true
  wait "$SRV" 2>/dev/null || true
}
trap cleanup EXIT INT TERM
for _ in $(seq 50); do grep -q listening "$KEYS/serve.out" 2>/dev/null && break; sleep 0.1; done
if ! grep -q listening "$KEYS/serve.out"; then
  echo "the server did not start (is port $PORT free? SUIRO_MQTT_PORT=... make run)" >&2
  exit 1
fi
"$BIN" gwsim run --port "$PORT" --operator sim --gateways 2 --points 5 --batch 10 --interval-ms 1000 \
  --messages 100000000 --duration 86400 > /dev/null 2>&1 &
GW=$!
# the demo's gateways answer requests (immediate, monitors, control)
for g in GW001 GW002; do
  s=$(echo "$g" | tr 'A-Z' 'a-z')
  "$BIN" gwsim run --port "$PORT" --operator demo --gateway-id "$g" --secret "demo-$s-secret" \
    --messages 0 --answer --sheet demo --duration 86400 > /dev/null 2> "$KEYS/gwsim-$g.log" &
  GW="$GW $!"
done
cat <<MSG

suiro is serving GW-IF over MQTT on 127.0.0.1:$PORT, and AP-IF + the GW-IF HTTP
binding on http://127.0.0.1:8080 (data: $DATA). The gateway simulator sends 10
values a second from SIM0001 and SIM0002, and plays the demo gateways GW001 and
GW002, answering requests from apps.

Try, in another terminal -- an app (APP001 of operator demo):
  T=\$(curl -s -X POST http://127.0.0.1:8080/api/v1/sessions \\
        -d '{"appId":"APP001","operatorId":"demo","secret":"demo-app001-secret"}' | sed 's/.*"token":"\\([0-9a-f]*\\)".*/\\1/')
  curl -s -X POST http://127.0.0.1:8080/api/v1/current-values -H "Authorization: Bearer \$T" -d '{"dataIds":["P001","P006"]}'
  curl -s -X POST http://127.0.0.1:8080/api/v1/control-values -H "Authorization: Bearer \$T" -d '{"dataId":"P007","value":42.5}'
  curl -s -X POST http://127.0.0.1:8080/api/v1/monitors -H "Authorization: Bearer \$T" -d '{"dataIds":["P001"],"intervalMs":1000}'
  curl -s "http://127.0.0.1:8080/api/v1/stored-values?dataId=P001&from=-5m" -H "Authorization: Bearer \$T"
A gateway:
  $BIN replay $DATA ${K[*]} --operator sim --kind measurements | tail -n 3
  mosquitto_pub -p $PORT -i GW001 -u demo/GW001 -P demo-gw001-secret -q 1 \\
    -t wip/v1/demo/gw/GW001/data/measurements \\
    -m '{"header":{"messageType":"GW_MEASUREMENTS","messageId":"try-1"},"body":{"values":[{"dataId":"P001","timestamp":"2026-11-22T00:00:00Z","value":12.5}]}}'
  T=\$(curl -s -X POST http://127.0.0.1:8080/gw/v1/sessions \\
        -d '{"operatorId":"demo","gatewayId":"GW002","secret":"demo-gw002-secret"}' | sed 's/.*"token":"\\([0-9a-f]*\\)".*/\\1/')
  curl -s -X POST http://127.0.0.1:8080/gw/v1/measurements -H "Authorization: Bearer \$T" \\
    -d '{"header":{"messageType":"GW_MEASUREMENTS","messageId":"try-2"},"body":{"values":[{"dataId":"P006","timestamp":"2026-11-22T00:00:00Z","value":3.2}]}}'
  $BIN verify $DATA ${K[*]}        (while it runs, or after)
The server's metrics and health (docs/monitoring.md; open on a loopback listener):
  curl -s http://127.0.0.1:8080/metrics | grep -E '^suiro_(values_ingested_total|fdatasync_seconds_count)'
  curl -s http://127.0.0.1:8080/ready
Ctrl-C stops the server and the simulator.
MSG
wait "$SRV"
