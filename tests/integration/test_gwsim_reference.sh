#!/usr/bin/env bash
# tests/integration/test_gwsim_reference.sh -- `suiro gwsim run --reference`
# sends the benchmarks' reference data set (api/cli/refset.h) to the real
# `suiro serve`: every message acknowledged, the log holds every value sent
# (late duplicates included), the index one value per point and second, the
# newest value where the set ends; a second run sends the very same messages
# (same hash, same messageIds: stored once); options out of range are
# refused. The server runs on loopback ports chosen at run time and is
# stopped by its PID. usage: test_gwsim_reference.sh SUIRO_BIN
set -u
BIN=$1
. "$(dirname "$0")/lib.sh"
sr_setup gwsimref
field() { /usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2], ""))' "$1" "$2"; }

P=30 S=250 G=4
D=$T/data
"$BIN" init "$D" >/dev/null
"$BIN" gwsim sheet --gateways $G --points $(( (P + G - 1) / G )) > "$T/sheet.csv"
printf '\n[apps]\nid,name,secret,push_url\nREADER,reader,reader-secret-1,\n\n[grants]\napp,datapoint,access\nREADER,*,read\n' >> "$T/sheet.csv"
"$BIN" sheet import "$T/sheet.csv" "$D" >/dev/null
sr_start --data "$D" --mqtt 127.0.0.1:0 --http 127.0.0.1:0
sim() { "$BIN" gwsim run --port "$MP" --gateways $G --batch 50 --window 8 --reference --ref-points $P \
  --ref-seconds $S --ref-late-bp 500 "$@" 2>>"$T/gwsim.err" | tail -n 1; }
logged() { "$BIN" replay "$D" --kind measurements | /usr/bin/python3 -c '
import json, sys
print(sum(len(p["values"]) for l in sys.stdin if l.strip() for p in json.loads(l)["measurements"]["points"]))'; }

j=$(sim); rc=$?
check "a reference run ends with 0" "[ $rc = 0 ]"
check "... every message acknowledged" "[ \"\$(field \"\$j\" acked)\" = \"\$(field \"\$j\" ref_messages)\" ] && [ \"\$(field \"\$j\" errors)\" = 0 ]"
check "... the set is points x seconds distinct values" "[ \"\$(field \"\$j\" ref_values_unique)\" = $((P * S)) ]"
sent=$(field "$j" ref_values_sent)
check "... with late duplicates sent on top" "[ \"$sent\" -gt $((P * S)) ] && [ \"\$(field \"\$j\" values_acked)\" = \"$sent\" ]"
check "the log holds every value sent" "[ \"\$(logged)\" = \"$sent\" ]"

TOK=$(sr_token "http://127.0.0.1:$HP/api/v1/sessions" '{"operatorId":"sim","appId":"READER","secret":"reader-secret-1"}')
ids=$(/usr/bin/python3 -c 'import sys
P, G = int(sys.argv[1]), int(sys.argv[2])
print("&".join("dataId=SP%04d_%02d" % (p % G + 1, p // G + 1) for p in range(P)))' $P $G)
counts=$(curl -s -H "Authorization: Bearer $TOK" \
  "http://127.0.0.1:$HP/api/v1/stored-values?$ids&from=2023-11-15T00:00:00Z&to=2023-11-16T00:00:00Z&interval=1d&agg=count" |
  /usr/bin/python3 -c 'import json,sys; v=json.load(sys.stdin)["values"]; print(len(v), sorted(set(x["count"] for x in v)))')
check "the index holds one value per point and second" "[ \"$counts\" = \"$P [$S]\" ]"
latest=$(curl -s -H "Authorization: Bearer $TOK" "http://127.0.0.1:$HP/api/v1/stored-values/latest?dataId=SP0001_01")
check "the newest value of point 0 is at the set's last second" "[[ \"\$latest\" == *'\"timestamp\":\"2023-11-15T00:04:09.000Z\"'* ]]"

j2=$(sim); rc=$?
check "a second run sends the same set (same hash)" "[ $rc = 0 ] && [ \"\$(field \"\$j2\" ref_hash)\" = \"\$(field \"\$j\" ref_hash)\" ] && [ -n \"\$(field \"\$j\" ref_hash)\" ]"
check "... in the same messages: the log is unchanged" "[ \"\$(logged)\" = \"$sent\" ]"

"$BIN" gwsim run --port "$MP" --gateways 2 --reference --ref-points 300 >/dev/null 2>&1; rc=$?
check "more than 99 points per gateway is refused (2)" "[ $rc = 2 ]"
"$BIN" gwsim run --port "$MP" --reference --answer >/dev/null 2>&1; rc=$?
check "--reference with --answer is refused (2)" "[ $rc = 2 ]"

sr_stop
check "the server stops cleanly" "[ $rc = 0 ]"
sr_finish
