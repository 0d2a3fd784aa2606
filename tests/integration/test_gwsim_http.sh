#!/usr/bin/env bash
# tests/integration/test_gwsim_http.sh -- `suiro gwsim run --http`: simulated
# gateways over the GW-IF HTTP binding against the real `suiro serve`.
#   1. 3 gateways x 200 messages of 50 values: every message acknowledged
#      (200, code "0") and stored once (600 messageIds, 30000 values).
#   2. kill -9 of the server in the middle of a run (--acks FILE), restart on
#      the same port: gwsim logs in again and re-sends; every acknowledged
#      message is stored exactly once, and all of them in the end.
#   3. --answer over HTTP (long poll): an app's immediate read, control and
#      monitor through AP-IF are answered by gwsim as gateway GW002; SIGINT
#      prints the summary and exits 0.
#   4. HTTPS with --tls-ca; without it the self-signed server is not trusted.
# Servers run on loopback ports chosen at run time and are stopped by PID.
# No timing assertions. usage: test_gwsim_http.sh SUIRO_BIN
set -u
BIN=$1
PY=${PYTHON:-python3}
. "$(dirname "$0")/lib.sh"
sr_setup gwsimhttp

# start_server ARGS...: `suiro serve ARGS` in the background; sets SRV and HP (its HTTP port)
start_server() { sr_start "$@"; }
stop_server() { sr_stop; }
# field NAME FILE: a number from gwsim's JSON summary (the last line of FILE)
field() { tail -1 "$2" | "$PY" -c 'import sys,json; print(json.loads(sys.stdin.read())[sys.argv[1]])' "$1" 2>/dev/null; }
# stored DIR: "messages distinct-messageIds values" of the measurements in the log
stored() {
  "$BIN" replay "$1" --kind measurements | "$PY" -c '
import sys, json
ids, nv = [], 0
for line in sys.stdin:
    e = json.loads(line)
    ids.append(e["message_id"])
    nv += sum(len(p["values"]) for p in e["measurements"]["points"])
print(len(ids), len(set(ids)), nv)'
}
GWSIM=("$BIN" gwsim run --operator sim --gateways 3 --points 5 --batch 50 --messages 200 --window 8)

"$BIN" gwsim sheet --gateways 3 --points 5 --operator sim > "$T/S"

# ---- 1. a plain run --------------------------------------------------------
D=$T/d1
"$BIN" init --demo "$D" > /dev/null && "$BIN" sheet import "$T/S" "$D" > /dev/null
check "server 1 starts" "start_server --data '$D' --mqtt 127.0.0.1:0 --http 127.0.0.1:0"
"${GWSIM[@]}" --http "http://127.0.0.1:$HP/" > "$T/run1" 2> "$T/run1.err"
rc=$?
check "gwsim --http exits 0" "[ $rc -eq 0 ]" "$(cat "$T/run1.err")"
check "... 600 messages acknowledged" "[ \"\$(field acked '$T/run1')\" = 600 ]" "$(cat "$T/run1")"
check "... no errors" "[ \"\$(field errors '$T/run1')\" = 0 ]"
check "... a steady rate is reported" "[ \"\$(field steady_msg_per_s '$T/run1')\" -gt 0 ]"
r=$(stored "$D")
check "replay while running: 600 messages, 600 messageIds, 30000 values" "[ '$r' = '600 600 30000' ]" "$r"
stop_server
r=$(stored "$D")
check "replay after the stop: the same" "[ '$r' = '600 600 30000' ]" "$r"

# ---- 2. kill -9 in the middle of a run -------------------------------------
D2=$T/d2
"$BIN" init --demo "$D2" > /dev/null && "$BIN" sheet import "$T/S" "$D2" > /dev/null
check "server 2 starts" "start_server --data '$D2' --mqtt 127.0.0.1:0 --http 127.0.0.1:0"
P2=$HP
"${GWSIM[@]}" --http "http://127.0.0.1:$P2" --interval-ms 10 --acks "$T/acks" > "$T/run2" 2> "$T/run2.err" &
GWS=$!
for _ in $(seq 400); do [ "$(cat "$T/acks" 2>/dev/null | wc -l)" -ge 50 ] && break; sleep 0.025; done
n_before=$(wc -l < "$T/acks")
kill -9 "$SRV"; wait "$SRV" 2>/dev/null; SRV=
check "kill -9 after $n_before acknowledgements (>= 50, < 600)" "[ $n_before -ge 50 -a $n_before -lt 600 ]"
sleep 0.3 # gwsim finds the server gone
up=0
for _ in $(seq 20); do
  if start_server --data "$D2" --mqtt 127.0.0.1:0 --http "127.0.0.1:$P2"; then up=1; break; fi
  kill -9 "$SRV" 2>/dev/null; wait "$SRV" 2>/dev/null; SRV=; sleep 0.25
done
check "the server restarts on the same HTTP port $P2" "[ $up -eq 1 -a '$HP' = '$P2' ]"
for _ in $(seq 600); do kill -0 "$GWS" 2>/dev/null || break; sleep 0.1; done
wait "$GWS"; rc=$?; GWS=
check "gwsim finishes across the restart, exit 0" "[ $rc -eq 0 ]" "$(tail -5 "$T/run2.err")"
check "... 600 acknowledged" "[ \"\$(field acked '$T/run2')\" = 600 ]" "$(cat "$T/run2")"
check "... having re-sent after the kill" "[ \"\$(field resent '$T/run2')\" -gt 0 ]"
check "... and said so on stderr" "grep -q 'the server answers again' '$T/run2.err'"
check "the acks file has 600 distinct acknowledgements" "[ \$(sort -u '$T/acks' | wc -l) -eq 600 -a \$(wc -l < '$T/acks') -eq 600 ]"
stop_server
r=$(stored "$D2")
check "replay: 600 messages, each stored once, 30000 values" "[ '$r' = '600 600 30000' ]" "$r"
"$BIN" replay "$D2" --kind measurements | "$PY" -c '
import sys, json, collections
n = collections.Counter(json.loads(l)["message_id"] for l in sys.stdin)
acked = [l.split() for l in open(sys.argv[1])]
bad = [a for a in acked if n["%s-%s" % (a[1], a[2])] != 1]
sys.exit(1 if bad or not acked else 0)' "$T/acks"
check "every acknowledged message (acks file) is in the log exactly once" "[ $? -eq 0 ]"

# ---- 3. --answer over HTTP ---------------------------------------------------
check "server 1 starts again" "start_server --data '$D' --mqtt 127.0.0.1:0 --http 127.0.0.1:0"
"$BIN" gwsim run --http "http://127.0.0.1:$HP" --operator demo --gateway-id GW002 --secret demo-gw002-secret \
  --messages 0 --answer --sheet demo --duration 20 > "$T/ans" 2> "$T/ans.err" &
GWS=$!
A=http://127.0.0.1:$HP/api/v1
app() { # METHOD PATH [BODY] -> "CODE BODY"
  curl -s -o "$T/body" -w '%{http_code}' -X "$1" "$A$2" ${3:+--data-binary "$3"} \
    ${ATOK:+-H "Authorization: Bearer $ATOK"} -H 'Content-Type: application/json' > "$T/code"
  echo "$(cat "$T/code") $(cat "$T/body")"
}
ATOK=
r=$(app POST /sessions '{"appId":"APP001","operatorId":"demo","secret":"demo-app001-secret"}')
ATOK=$(sed -n 's/.*"token":"\([0-9a-f]*\)".*/\1/p' <<<"$r")
check "the app logs in" "[[ \"\$r\" == 201* && -n '$ATOK' ]]" "$r"
# GW002 counts as connected once its first long poll waits
for _ in $(seq 100); do
  r=$(app POST /current-values '{"dataIds":["P006"],"timeoutMs":5000}')
  [[ "$r" == 200* ]] && break; sleep 0.1
done
v=$("$PY" -c 'import sys,json; v=json.loads(sys.argv[1])["values"][0]; print(v["dataId"], 0 <= v["value"] <= 12.5)' "${r#* }" 2>/dev/null)
check "current-values P006: 200 with a value in the point's range" "[[ \"\$r\" == 200* && '$v' == 'P006 True' ]]" "$r"
r=$(app POST /control-values '{"dataId":"P007","value":42.5}')
check "control-values P007 42.5: 200, appliedValue 42.5" "[[ \"\$r\" == 200*'\"appliedValue\":42.5'* ]]" "$r"
r=$(app POST /monitors '{"dataIds":["P006"],"intervalMs":200}')
MID=$(sed -n 's/.*"monitorId":"\([A-Za-z0-9]*\)".*/\1/p' <<<"$r")
check "a monitor starts (201)" "[[ \"\$r\" == 201* && -n '$MID' ]]" "$r"
st=
for _ in $(seq 100); do
  r=$(app GET /monitors)
  st=$("$PY" -c 'import sys,json; print([m["status"] for m in json.loads(sys.argv[1])["items"] if m["monitorId"]==sys.argv[2]][0])' "${r#* }" "$MID" 2>/dev/null)
  [ "$st" = RUNNING ] && break; sleep 0.1
done
check "... and becomes RUNNING once gwsim acknowledged it" "[ '$st' = RUNNING ]" "$st"
sleep 1 # a few periodic messages
kill -INT "$GWS"; wait "$GWS"; rc=$?; GWS=
check "SIGINT: gwsim prints the summary and exits 0" "[ $rc -eq 0 ]" "$(tail -5 "$T/ans.err")"
check "... 3 requests answered, none refused" \
  "[ \"\$(field requests '$T/ans')\" -ge 3 -a \"\$(field answered '$T/ans')\" -ge 3 -a \"\$(field answers_refused '$T/ans')\" = 0 ]" \
  "$(cat "$T/ans")"
check "... periodic values were sent" "[ \"\$(field periodic '$T/ans')\" -ge 1 ]"
stop_server

# ---- 4. HTTPS -------------------------------------------------------------------
if openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/srv.key" -out "$T/srv.pem" \
     -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2> /dev/null; then
  printf '[engine]\ndata_dir = %s\n[mqtt]\nlisten = 127.0.0.1:0\n[http]\nlisten = 127.0.0.1:0\ntls_cert = %s\ntls_key = %s\n' \
    "$D" "$T/srv.pem" "$T/srv.key" > "$T/tls.ini"
  check "the HTTPS server starts" "start_server --config '$T/tls.ini'"
  "${GWSIM[@]}" --messages 20 --http "https://127.0.0.1:$HP" --tls-ca "$T/srv.pem" > "$T/run4" 2> "$T/run4.err"
  rc=$?
  check "gwsim over HTTPS with --tls-ca: exit 0, 60 acknowledged" "[ $rc -eq 0 -a \"\$(field acked '$T/run4')\" = 60 ]" \
    "$(cat "$T/run4" "$T/run4.err")"
  "${GWSIM[@]}" --messages 20 --duration 1.5 --http "https://127.0.0.1:$HP" > "$T/run5" 2> "$T/run5.err"
  rc=$?
  check "without --tls-ca the self-signed server is not trusted (exit 1, nothing acknowledged)" \
    "[ $rc -eq 1 -a \"\$(field acked '$T/run5')\" = 0 ] && grep -qi 'certificate' '$T/run5.err'" "$(cat "$T/run5.err")"
  stop_server
else
  echo "skip: HTTPS (openssl cannot make a certificate)"
fi

sr_finish
