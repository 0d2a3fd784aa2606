#!/usr/bin/env bash
# tests/integration/test_apsim.sh -- `suiro apsim` (the app stub) against the
# real `suiro serve`: sessions (login, --token, logout), masters, latest and
# stored values (paging with --all), errors by code and exit status (1 for an
# error answer, still printed; 2 usage; 3 unreachable), certificates,
# requests, monitors, and one `load` run. Values are stored through the GW-IF
# HTTP binding with curl. The documents and files checks run when the server
# has those endpoints, and print "skip:" while it answers 404 E3001 "unknown
# path". Any sanitizer report on apsim's stderr fails the test (run it with
# an ASan build's binary). usage: test_apsim.sh SUIRO_BIN
set -u
BIN=$1
. "$(dirname "$0")/lib.sh"
sr_setup apsim
sr_on_fail() { echo "  rc=${rc:-} out=${out:0:400}"; head -c 600 "$T/err"; }
# ap ARGS... -> $out (stdout), $rc; stderr in $T/err, sanitizer reports kept
ap() {
  out=$("$BIN" apsim "$@" 2>"$T/err"); rc=$?
  if grep -q 'Sanitizer' "$T/err"; then cat "$T/err" >> "$T/san"; fi
}
# json EXPR: EXPR over d, the JSON of $out; a tuple prints space-separated
json() { sr_json "$1" <<<"$out"; }

D=$T/data
"$BIN" init --demo "$D" >/dev/null
sr_start --data "$D" --mqtt 127.0.0.1:0 --http 127.0.0.1:0 || { echo "FAIL: the server did not start"; cat "$T/log"; exit 1; }
P=$HP
export SUIRO_URL=http://127.0.0.1:$P SUIRO_APP_SECRET=demo-app001-secret
unset SUIRO_TOKEN

# --- values through GW-IF HTTP ---
G=http://127.0.0.1:$P/gw/v1
GTOK=$(sr_token "$G/sessions" '{"operatorId":"demo","gatewayId":"GW001","secret":"demo-gw001-secret"}')
measure() { # messageId values-json
  curl -s -o /dev/null -w '%{http_code}' -X POST "$G/measurements" -H "Authorization: Bearer $GTOK" \
    --data-binary "{\"header\":{\"messageType\":\"GW_MEASUREMENTS\",\"messageId\":\"$1\"},\"body\":{\"values\":[$2]}}"
}

# --- usage and reachability ---
# ARGS|EXIT|WHAT (ARGS split on spaces)
USAGE=("|2|no command: usage, exit 2"
       "masters facilities --bogus|2|an unknown option exits 2"
       "latest --limit 5 --data-id P001|2|an option of another command exits 2"
       "latest|2|a missing --data-id exits 2"
       "masters pumps|2|an unknown master kind exits 2"
       "certificate gateway|2|certificate gateway without an ID exits 2"
       "masters facilities --url http://127.0.0.1:1|3|an unreachable URL exits 3")
for c in "${USAGE[@]}"; do
  IFS='|' read -r args want what <<<"$c"
  # shellcheck disable=SC2086
  ap $args; check "$what" "[ \$rc -eq $want ]"
done

# --- sessions ---
ap masters facilities --secret wrong-secret-123
check "a wrong secret exits 1 with E2001 printed" '[ $rc -eq 1 ] && [[ $out == *E2001* ]]'
ap login
TOK=$(json "d['token']")
check "login prints the token JSON" '[ $rc -eq 0 ] && [ ${#TOK} -eq 64 ] && [[ $out == *expiresAt* ]]'
ap masters facilities --token "$TOK"
check "--token reuses the session" '[ $rc -eq 0 ] && [[ $out == *F001* ]]'
SUIRO_TOKEN=$TOK ap masters equipment --secret wrong-secret-123
check "... and so does SUIRO_TOKEN (no login)" '[ $rc -eq 0 ] && [[ $out == *E002* ]]'
ap logout --token "$TOK"; check "logout exits 0" '[ $rc -eq 0 ]'
ap masters facilities --token "$TOK"
check "... and the token is revoked (E2001: unknown now, not expired)" '[ $rc -eq 1 ] && [[ $out == *E2001* ]]'

# --- masters ---
ap masters facilities; v=$(json "[i['id'] for i in d['items']]")
check "masters facilities" '[ $rc -eq 0 ] && [ "$v" = "['"'F001'"']" ]'
ap masters datapoints --parent D001 --pretty; v=$(json "len(d['items'])")
check "masters datapoints --parent D001 (--pretty)" '[ $rc -eq 0 ] && [ "$v" = 5 ] && [ $(wc -l <<<"$out") -gt 5 ]'

# --- latest and stored values ---
code=$(measure m-1 '{"dataId":"P001","timestamp":"2026-11-22T00:00:00Z","value":12.5}')
check "a value stored through GW-IF HTTP" '[ $code = 200 ]'
ap latest --data-id P001; v=$(json "d['values'][0]['value'], d['values'][0]['timestamp']")
check "latest prints it" '[ $rc -eq 0 ] && [ "$v" = "12.5 2026-11-22T00:00:00.000Z" ]'
ok=1
for b in 0 1 2 3 4; do
  vals=$(awk -v b=$b 'BEGIN{for(i=0;i<500;i++){n=b*500+i; printf "%s{\"dataId\":\"P004\",\"timestamp\":\"2026-11-21T%02d:%02d:%02dZ\",\"value\":%d}", (i?",":""), int(n/3600), int(n/60)%60, n%60, n}}')
  [ "$(measure p-$b "$vals")" = 200 ] || ok=0
done
check "2500 values stored in 5 batches" '[ $ok -eq 1 ]'
W=(--data-id P004 --from 2026-11-21T00:00:00Z --to 2026-11-22T00:00:00Z)
ap stored-values "${W[@]}" --limit 1000; v=$(json "len(d['values']), d['nextCursor'] is not None")
check "one page: 1000 values and a nextCursor" '[ $rc -eq 0 ] && [ "$v" = "1000 True" ]'
ap stored-values "${W[@]}" --limit 1000 --all; v=$(json "[x['value'] for x in d['values']] == list(range(2500))")
check "--all: all 2500 values, each once, in order" '[ $rc -eq 0 ] && [ "$v" = True ]'
ap stored-values "${W[@]}" --limit 7 --order desc; v=$(json "[x['value'] for x in d['values']]")
check "--order desc --limit 7" '[ $rc -eq 0 ] && [ "$v" = "[2499, 2498, 2497, 2496, 2495, 2494, 2493]" ]'
ap stored-values --data-id P004 --from -30d --to now --limit 1; v=$(json "len(d['values'])")
check "relative times are passed on" '[ $rc -eq 0 ] && [ "$v" = 1 ]'
ap stored-values --data-id P999
check "a point not granted: exit 1, E2003" '[ $rc -eq 1 ] && [[ $out == *E2003* ]]'

# --- requests, control, monitors, certificates ---
ap current-values --data-id P006
check "current-values on an offline gateway: exit 1, E4001 printed" '[ $rc -eq 1 ] && [[ $out == *E4001* ]]'
Q=$(json "d['result']['detail']['requestId']")
ap request --request-id "$Q"; v=$(json "d['status']")
check "request: the failed request's status" '[ $rc -eq 0 ] && [ "$v" = FAILED ]'
ap control --data-id P007 --value 420
check "control out of range: exit 1, E4004" '[ $rc -eq 1 ] && [[ $out == *E4004* ]]'
ap control --data-id P007 --value 42.5 --protection '{"broken'
check "control with a bad --protection exits 2" '[ $rc -eq 2 ]'
ap monitor-start --data-id P006 --interval-ms 1000; M=$(json "d['monitorId']")
check "monitor-start" '[ $rc -eq 0 ] && [ -n "$M" ]'
ap monitors
check "monitors lists it" '[ $rc -eq 0 ] && [[ $out == *"$M"* ]]'
ap monitor-stop --monitor-id "$M"
check "monitor-stop" '[ $rc -eq 0 ] && [[ $out == *STOP* ]]'
# --start-at/--end-at go through the one time parser (now, -1h, offsets) and are sent as RFC 3339
ap monitor-start --data-id P006 --interval-ms 1000 --start-at -2m --end-at -1m
check "monitor-start --start-at -2m --end-at -1m: sent as times (the server refuses the past endAt, E1001)" \
  '[ $rc -eq 1 ] && [[ $out == *E1001* ]] && [[ $out == *"endAt: in the past"* ]] && [[ $out != *"RFC 3339"* ]]'
ap monitor-start --data-id P006 --interval-ms 1000 --start-at now --end-at=-1x
check "monitor-start --end-at=-1x: a usage error naming it" '[ $rc -eq 2 ] && grep -q -- "--end-at" "$T/err" && grep -q -- "-1x" "$T/err"'
ap monitor-start --data-id P006 --interval-ms 1000 --start-at bogus
check "monitor-start --start-at bogus: a usage error naming it" '[ $rc -eq 2 ] && grep -q -- "--start-at" "$T/err"'
ap monitor-start --data-id P006 --interval-ms 1000 --start-at now; M2=$(json "d['monitorId']")
check "monitor-start --start-at now" '[ $rc -eq 0 ] && [ -n "$M2" ]'
ap monitor-stop --monitor-id "$M2"
check "monitor-stop (--start-at now)" '[ $rc -eq 0 ] && [[ $out == *STOP* ]]'
ap certificate platform
check "certificate platform prints a PEM" '[ $rc -eq 0 ] && [[ $out == "-----BEGIN CERTIFICATE-----"* ]]'

# --- load ---
ap load --what latest --data-id P001 --requests 300 --connections 4
v=$(json "d['bench'], d['requests'], d['errors'], d['identical'], d['bytes'] > 0, len(d['verify'])")
check "load latest: one JSON line, 300 requests, no errors, identical bodies" \
  '[ $rc -eq 0 ] && [ $(wc -l <<<"$out") -eq 1 ] && [ "$v" = "apsim_load 300 0 True True 16" ]'
ap load --what raw "${W[@]}" --limit 500 --requests 50 --connections 8; v=$(json "d['requests'], d['errors'], d['static']")
check "load raw (a static window)" '[ $rc -eq 0 ] && [ "$v" = "50 0 True" ]'
ap load --what latest --data-id P999 --requests 5; v=$(json "d['errors']")
check "load of a refused query: exit 1, errors counted" '[ $rc -eq 1 ] && [ "$v" = 5 ]'
ap login; LTOK=$(json "d['token']")
ap load --get-url "$SUIRO_URL/api/v1/stored-values/latest?dataId=P001" --header "Authorization: Bearer $LTOK" \
  --requests 40 --connections 2 --save-body "$T/first"
v=$(json "d['what'], d['requests'], d['errors'], d['identical'], d['body_bytes'] == $(wc -c < "$T/first" 2>/dev/null || echo -1)")
check "load --get-url with --header: any URL, no login; the first body saved" \
  '[ $rc -eq 0 ] && [ "$v" = "get 40 0 True True" ] && grep -q 12.5 "$T/first"'
ap load --get-url "$SUIRO_URL/api/v1/stored-values/latest?dataId=P001" --requests 3; v=$(json "d['errors']")
check "load --get-url without the header: the 401s are errors, exit 1" '[ $rc -eq 1 ] && [ "$v" = 3 ]'
ap load --get-url "$SUIRO_URL/api/v1/stored-values/latest?dataId=P001" --what raw
check "load --get-url with --what exits 2" '[ $rc -eq 2 ]'
ap load --what latest --data-id P001 --header "X-A: b"
check "load --header without --get-url exits 2" '[ $rc -eq 2 ]'
# --rate paces: request k is issued no earlier than k/R s after the start, so
# 21 requests at 40 a second cannot be done before 0.5 s (a lower bound the
# pace guarantees, not a speed: a slow machine only makes it longer); the
# same query unpaced is the control
ap load --what latest --data-id P001 --requests 21 --connections 3 --rate 40
v=$(json "d['requests'], d['errors'], d['secs'] >= 0.5")
check "load --rate 40: 21 requests, no errors, paced (not done before 20/40 s)" '[ $rc -eq 0 ] && [ "$v" = "21 0 True" ]'
ap load --what latest --data-id P001 --duration 1 --connections 2 --rate 30
v=$(json "d['errors'], 1 <= d['requests'] <= 31")
check "load --duration 1 --rate 30: never more than the pace allows (30 + 1)" '[ $rc -eq 0 ] && [ "$v" = "0 True" ]'
ap load --what latest --data-id P001 --requests 5 --rate 0
check "load --rate 0 exits 2" '[ $rc -eq 2 ]'
ap logout --token "$LTOK"

# --- documents (skipped while the server has no /api/v1/documents) ---
ap doc-query apsimtest
if [ $rc -eq 1 ] && [[ $out == *E3001* && $out == *'unknown path'* ]]; then
  skip "documents: the server answers 404 E3001 unknown path"
else
  ap doc-put apsimtest --json '{"kind":"note","text":"hello"}'
  DID=$(json "d['documentId']"); REV=$(json "d['revision']")
  check "doc-put registers (documentId, revision)" '[ $rc -eq 0 ] && [ -n "$DID" ] && [ -n "$REV" ]'
  ap doc-get apsimtest "$DID"; v=$(json "d['text']")
  check "doc-get returns it" '[ $rc -eq 0 ] && [ "$v" = hello ]'
  ap doc-query apsimtest --field kind --value note
  check "doc-query finds it" '[ $rc -eq 0 ] && [[ $out == *hello* ]]'
  ap doc-put apsimtest --id "$DID" --if-match "$((REV + 5))" --json '{"kind":"note","text":"bye"}'
  check "doc-put with a stale If-Match: exit 1, E3002" '[ $rc -eq 1 ] && [[ $out == *E3002* ]]'
  echo '{"kind":"note","text":"bye"}' > "$T/doc.json"
  ap doc-put apsimtest --id "$DID" --if-match "$REV" --file "$T/doc.json"; v=$(json "d['revision']")
  check "doc-put with the revision updates" '[ $rc -eq 0 ] && [ -n "$v" ] && [ "$v" != "$REV" ]'
  ap doc-delete apsimtest "$DID"
  check "doc-delete" '[ $rc -eq 0 ]'
  ap doc-get apsimtest "$DID"
  check "... then doc-get: exit 1, E3001" '[ $rc -eq 1 ] && [[ $out == *E3001* ]]'
fi

# --- files (skipped while the server has no /api/v1/files) ---
ap file-list --prefix apsimtest/
if [ $rc -eq 1 ] && [[ $out == *E3001* && $out == *'unknown path'* ]]; then
  skip "files: the server answers 404 E3001 unknown path"
else
  head -c 250001 /dev/urandom > "$T/f.bin"
  SUM=$(sha256sum "$T/f.bin" | cut -c1-64)
  printf '{"small":true}\n' > "$T/small.json"
  SMALL=$(sha256sum "$T/small.json" | cut -c1-64)
  ap file-put apsimtest/small.json --file "$T/small.json" --content-type application/json; v=$(json "d['sha256']")
  check "file-put (one request)" '[ $rc -eq 0 ] && [ "$v" = "$SMALL" ]'
  ap file-put "apsimtest/dir_one/f.bin" --file "$T/f.bin" --part-size 100000; v=$(json "d['size'], d['sha256']")
  check "file-put in 3 parts: the final 201 with the file's sha256" '[ $rc -eq 0 ] && [ "$v" = "250001 $SUM" ]'
  ap file-get "apsimtest/dir_one/f.bin" --out "$T/g.bin"
  check "file-get --out: the same bytes" '[ $rc -eq 0 ] && cmp -s "$T/f.bin" "$T/g.bin"'
  "$BIN" apsim file-get "apsimtest/dir_one/f.bin" > "$T/h.bin" 2>"$T/err"; rc=$?
  check "file-get to stdout: the same bytes" '[ $rc -eq 0 ] && cmp -s "$T/f.bin" "$T/h.bin"'
  ap file-list --prefix apsimtest/
  check "file-list --prefix" '[ $rc -eq 0 ] && [[ $out == *f.bin* && $out == *small.json* ]]'
  ap file-delete "apsimtest/dir_one/f.bin"
  check "file-delete" '[ $rc -eq 0 ]'
  ap file-get "apsimtest/dir_one/f.bin" --out "$T/i.bin"
  check "... then file-get: exit 1, nothing written" '[ $rc -eq 1 ] && [[ $out == *E3001* ]] && ! ls "$T"/i.bin* >/dev/null 2>&1'
  ap file-delete apsimtest/small.json
fi

check "no sanitizer report from apsim" '[ ! -s "$T/san" ]'
[ -s "$T/san" ] && head -50 "$T/san"
check "the server is up" 'kill -0 $SRV'
sr_stop
sr_finish
