#!/usr/bin/env bash
# tests/integration/test_gw_http.sh -- the GW-IF HTTP binding through the real
# `suiro serve`, with curl: sessions (token), values stored once durable,
# each bad value named, errors by code, duplicates, disconnect, body limit,
# clean stop. The server runs on loopback ports chosen at run time and is
# stopped by its PID. usage: test_gw_http.sh SUIRO_BIN
set -u
BIN=$1
. "$(dirname "$0")/lib.sh"
sr_setup gwhttp

D=$T/data
"$BIN" init --demo "$D" >/dev/null
printf '[engine]\ndata_dir = %s\n[mqtt]\nlisten = 127.0.0.1:0\n[http]\nlisten = 127.0.0.1:0\nmax_body = 4096\n' "$D" > "$T/suiro.ini"
sr_start --config "$T/suiro.ini"
P=$HP
U=http://127.0.0.1:$P/gw/v1
req() { # METHOD PATH [BODY] [TOKEN] -> prints "CODE BODY"
  local tok=${4:-}
  curl -s -o "$T/body" -w '%{http_code}' -X "$1" "$U$2" ${3:+--data-binary "$3"} \
    ${tok:+-H "Authorization: Bearer $tok"} -H 'Content-Type: application/json' > "$T/code"
  echo "$(cat "$T/code") $(cat "$T/body")"
}
msg() { printf '{"header":{"messageType":"GW_MEASUREMENTS","messageId":"%s"},"body":{"values":[%s]}}' "$1" "$2"; }
stored() { "$BIN" replay "$D" --kind measurements | wc -l; }

r=$(req POST /sessions '{"operatorId":"demo","gatewayId":"GW001","secret":"wrong-secret-123"}')
check "a wrong secret gets 401 E2001" "[[ \"\$r\" == 401* && \"\$r\" == *E2001* ]]"
r=$(req POST /sessions '{"operatorId":"demo","gatewayId":"GW001","secret":"demo-gw001-secret"}')
TOK=$(sed -n 's/.*"token":"\([0-9a-f]*\)".*/\1/p' <<<"$r")
check "a session gives a 256-bit token (201)" "[[ \"\$r\" == 201* && \${#TOK} -eq 64 ]]"

r=$(req POST /measurements "$(msg h-1 '{"dataId":"P001","timestamp":"2026-11-22T00:00:00Z","value":4.5},{"dataId":"P002","timestamp":"2026-11-22T00:00:00Z","value":0.3}')" "$TOK")
check "values are acknowledged with 200 and code 0" "[[ \"\$r\" == 200*'\"code\":\"0\"'* ]]"
check "... and are in the log" "[ \$(stored) -eq 1 ]"
r=$(req POST /measurements "$(msg h-1 '{"dataId":"P001","timestamp":"2026-11-22T00:00:00Z","value":9.9}')" "$TOK")
check "a repeated messageId is acknowledged again" "[[ \"\$r\" == 200*duplicate* ]]"
check "... and stored once" "[ \$(stored) -eq 1 ]"
r=$(req POST /measurements "$(msg h-2 '{"dataId":"P001","timestamp":"2026-11-22T00:00:01Z","value":"high"},{"dataId":"P006","timestamp":"2026-11-22T00:00:01Z","value":1},{"dataId":"P001","timestamp":"2026-11-22T00:00:02Z","value":1}')" "$TOK")
check "a bad batch gets 400 E1001 naming each bad value" "[[ \"\$r\" == 400*E1001* && \$(grep -o '\"index\"' \"$T/body\" | wc -l) -eq 2 ]]"
check "... and nothing of it is stored" "[ \$(stored) -eq 1 ]"
r=$(req POST /measurements '{"header":' "$TOK")
check "malformed JSON gets 400 E1002" "[[ \"\$r\" == 400*E1002* ]]"
# header.messageType is the route's (sr_gw_kinds): a mismatch is E1001 naming it, nothing stored
r=$(req POST /measurements '{"header":{"messageType":"BOGUS","messageId":"h-t1"},"body":{"values":[{"dataId":"P001","timestamp":"2026-11-22T00:00:05Z","value":1}]}}' "$TOK")
check "messageType BOGUS on /measurements (the fast path's shape) gets 400 E1001 naming header.messageType" "[[ \"\$r\" == 400*E1001*header.messageType* ]]"
r=$(req POST /measurements '{ "header" : {"messageType":"GW_PERIODIC_DATA","messageId":"h-t2"},"body":{"values":[{"dataId":"P001","timestamp":"2026-11-22T00:00:06Z","value":1}]}}' "$TOK")
check "messageType GW_PERIODIC_DATA on /measurements (the parser's shape) gets 400 E1001 naming header.messageType" "[[ \"\$r\" == 400*E1001*header.messageType* ]]"
check "... and neither is stored" "[ \$(stored) -eq 1 ]"
r=$(req POST /requests/fetch '{"header":{"messageType":"GW_MEASUREMENTS","messageId":"h-t3"},"body":{"maxItems":1}}' "$TOK")
check "messageType GW_MEASUREMENTS on /requests/fetch gets 400 E1001 naming header.messageType" "[[ \"\$r\" == 400*E1001*header.messageType* ]]"
r=$(req POST /requests/fetch '{"header":{"messageType":"GW_FETCH_REQ","messageId":"h-t4"},"body":{"maxItems":1}}' "$TOK")
check "... and GW_FETCH_REQ there is answered 200" "[[ \"\$r\" == 200*GW_FETCH_RES* ]]"
r=$(req POST /measurements "$(msg h-3 '{"dataId":"P001","timestamp":"2026-11-22T00:00:03Z","value":1}')")
check "no token gets 401 E2001" "[[ \"\$r\" == 401*E2001* ]]"
r=$(req POST /measurements "$(msg h-3 '{"dataId":"P001","timestamp":"2026-11-22T00:00:03Z","value":1}')" "$(printf 'ab%.0s' $(seq 32))")
check "a token the server never issued gets 401 E2001" "[[ \"\$r\" == 401*E2001* ]]"
big=$(head -c 8000 /dev/zero | tr '\0' 'x')
r=$(req POST /measurements "{\"pad\":\"$big\"}" "$TOK")
check "a body over max_body gets 413" "[[ \"\$r\" == 413* ]]"
r=$(req GET /nowhere "" "$TOK")
check "an unknown path gets 404 E3001" "[[ \"\$r\" == 404*E3001* ]]"
r=$(req DELETE /sessions/current "" "$TOK")
check "disconnect gets 204" "[[ \"\$r\" == 204* ]]"
r=$(req POST /measurements "$(msg h-4 '{"dataId":"P001","timestamp":"2026-11-22T00:00:04Z","value":1}')" "$TOK")
check "the token is revoked at once (401 E2001: a revoked token is unknown, not expired)" "[[ \"\$r\" == 401*E2001* ]]"
check "the server is up" "kill -0 $SRV"
# an idle keep-alive connection stays open across the stop
exec 3<>/dev/tcp/127.0.0.1/$P
printf 'GET /gw/v1/nothing HTTP/1.1\r\nHost: x\r\n\r\n' >&3
sleep 0.2
sr_stop
exec 3>&-
check "SIGTERM stops it cleanly" "[ $rc -eq 0 ]"
sr_finish
