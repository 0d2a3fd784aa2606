#!/usr/bin/env bash
# tests/integration/test_cli_engine.sh -- the engine commands through the real
# binary: init --demo, sheet import/export (idempotent, all-or-nothing, line
# numbers), replay filters, rebuild, verify (and verify catching a stale index);
# init --signature: a platform key of another algorithm (EdDSA) signs a backup
# that restores and verifies, a key of another algorithm is refused naming
# both, an unknown name is refused naming the known ones and creates nothing.
# usage: test_cli_engine.sh SUIRO_BIN
set -u
BIN=$1
. "$(dirname "$0")/lib.sh"
sr_setup cli

D=$T/data
out=$("$BIN" init --demo "$D" 2>&1); rc=$?
check "init --demo succeeds" "[ $rc -eq 0 ] && grep -q 'change(s) stored' <<<\"\$out\""
out=$("$BIN" init --demo "$D" 2>&1)
check "init --demo again changes nothing (idempotent)" "grep -q 'nothing changed' <<<\"\$out\""

"$BIN" sheet export "$D" --operator demo > "$T/export.csv"; rc=$?
check "export succeeds" "[ $rc -eq 0 ]"
check "export lists every section" "for s in operator gateways apps grants facilities equipment devices datapoints; do grep -q \"^\\[\$s\\]\" $T/export.csv || exit 1; done"
check "export never contains secrets" "! grep -q 'demo-gw001-secret' $T/export.csv"
out=$("$BIN" sheet import "$T/export.csv" "$D" 2>&1)
check "re-importing the export changes nothing" "grep -q 'nothing changed' <<<\"\$out\""
"$BIN" sheet export "$D" --operator demo > "$T/export2.csv"
check "export is byte-identical after a round trip" "cmp -s $T/export.csv $T/export2.csv"

# a bad sheet: two errors, both reported with line numbers; nothing stored
before=$("$BIN" replay "$D" | wc -l)
sed -e 's/^D001,E001,GW001,/D001,E999,GW001,/' -e 's/^\(PT001,[^,]*,[^,]*,\)[a-z]*/\1float/' "$T/export.csv" > "$T/bad.csv"
grep -n 'E999' "$T/bad.csv" >/dev/null || echo "note: sample edit did not apply"
out=$("$BIN" sheet import "$T/bad.csv" "$D" 2>&1); rc=$?
line=$(grep -n 'E999' "$T/bad.csv" | cut -d: -f1)
check "a bad sheet is refused" "[ $rc -ne 0 ] && grep -q 'nothing imported' <<<\"\$out\""
check "the bad row is named by its line number" "grep -q \"bad.csv:$line:\" <<<\"\$out\""
after=$("$BIN" replay "$D" | wc -l)
check "nothing was stored from the bad sheet" "[ $before -eq $after ]"

# replay filters
n_all=$("$BIN" replay "$D" | wc -l)
n_dp=$("$BIN" replay "$D" --kind master_put | grep -c '"MK_DATA_POINT"')
check "replay shows every event as JSON" "[ $n_all -ge 20 ] && \"$BIN\" replay \"$D\" | head -1 | grep -q '^{\"seq\":1,'"
check "replay --kind filters" "[ $n_dp -ge 10 ] && ! \"$BIN\" replay \"$D\" --kind master_put | grep -q registry_put"
n_range=$("$BIN" replay "$D" --from 3 --to 5 | wc -l)
check "replay --from/--to by sequence" "[ $n_range -eq 3 ]"
check "replay --operator of another operator shows nothing" "[ \$(\"$BIN\" replay \"$D\" --operator nobody | wc -l) -eq 0 ]"
"$BIN" replay "$D" --from x >/dev/null 2>&1; rc=$?
check "replay rejects a bad bound" "[ $rc -eq 2 ]"

# verify, rebuild
out=$("$BIN" verify "$D" 2>&1); rc=$?
check "verify passes on a healthy directory" "[ $rc -eq 0 ] && grep -q 'index equals a rebuild' <<<\"\$out\""
out=$("$BIN" rebuild "$D" 2>&1); rc=$?
check "rebuild succeeds" "[ $rc -eq 0 ]"
out=$("$BIN" verify "$D" --json 2>&1); rc=$?
check "verify after rebuild, as JSON" "[ $rc -eq 0 ] && grep -q '\"verdict\":\"ok\"' <<<\"\$out\""

# an index that is not this log's is caught by verify (same events, other secret salts)
D3=$T/data3
"$BIN" init --demo "$D3" >/dev/null
cp "$D/index/data.mdb" "$D3/index/data.mdb"
out=$("$BIN" verify "$D3" 2>&1); rc=$?
check "verify catches an index that differs from a rebuild" "[ $rc -eq 1 ] && grep -q 'index-differs' <<<\"\$out\""
"$BIN" rebuild "$D3" >/dev/null 2>&1
out=$("$BIN" verify "$D3" 2>&1); rc=$?
check "rebuild repairs it" "[ $rc -eq 0 ]"

# an index that lags the log (a crash between the log append and the index
# commit) is consistent: verify compares it with a rebuild up to its watermark
D4=$T/data4
"$BIN" init --demo "$D4" >/dev/null
cp "$D4/index/data.mdb" "$T/lagging.mdb"
sed 's/^GW001,Intake gateway,/GW001,Intake gateway renamed,/' "$T/export.csv" > "$T/renamed.csv"
"$BIN" sheet import "$T/renamed.csv" "$D4" >/dev/null
cp "$T/lagging.mdb" "$D4/index/data.mdb"
out=$("$BIN" verify "$D4" 2>&1); rc=$?
check "verify accepts an index that lags the log (crash before the index commit)" "[ $rc -eq 0 ]"
"$BIN" init "$D4" >/dev/null 2>&1
out=$("$BIN" sheet export "$D4" --operator demo 2>&1)
check "opening it for writing applies what the index missed" "grep -q 'Intake gateway renamed' <<<\"\$out\""

# a damaged last block the index had applied (acknowledged data): corruption,
# never a torn tail; verify, log verify, serve and rebuild all refuse and name
# the block, and none advises a command that would drop it (issue #11 item 9)
D5=$T/data5
"$BIN" init --demo "$D5" >/dev/null
SEG=$D5/log/00000000000000000001.seg
cp "$SEG" "$T/seg.orig"
sz=$(stat -c %s "$SEG")
printf '\x5a' | dd of="$SEG" bs=1 seek=$((sz - 5)) conv=notrunc status=none
cp "$SEG" "$T/seg.flipped"
out=$("$BIN" verify "$D5" 2>&1); rc=$?
check "verify: a flipped byte in the applied last block is corruption (exit 1)" "[ $rc -eq 1 ] && grep -q 'corruption, not a torn tail' <<<\"\$out\""
check "verify names the segment and the block" "grep -q '00000000000000000001.seg offset [0-9]* (block seq [0-9]*)' <<<\"\$out\""
check "verify does not advise a rebuild" "! grep -q rebuild <<<\"\$out\""
out=$("$BIN" log verify "$D5/log" 2>&1); rc=$?
check "log verify inside a data directory: corrupt (1), not torn (3)" "[ $rc -eq 1 ] && grep -q 'block seq' <<<\"\$out\""
out=$(timeout 20 "$BIN" serve --data "$D5" --mqtt 127.0.0.1:0 2>&1); rc=$?
check "serve refuses to start, naming the block" "[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q 'block seq' <<<\"\$out\" && ! grep -q rebuild <<<\"\$out\""
out=$("$BIN" rebuild "$D5" 2>&1); rc=$?
check "rebuild refuses and changes nothing" "[ $rc -ne 0 ] && cmp -s \"$SEG\" \"$T/seg.flipped\" && ! ls $D5/log | grep -q torn && [ -f $D5/index/data.mdb ]"
# a truncated applied block is corruption too
cp "$T/seg.orig" "$SEG"
truncate -s $((sz - 3)) "$SEG"
out=$("$BIN" verify "$D5" 2>&1); rc=$?
check "verify: a cut applied last block is corruption" "[ $rc -eq 1 ] && grep -q 'not a torn tail' <<<\"\$out\""
# a genuinely torn tail (bytes after what the index applied) is still cut
cp "$T/seg.orig" "$SEG"
printf 'SRBKxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' >> "$SEG"
out=$("$BIN" log verify "$D5/log" 2>&1); rc=$?
check "log verify: bytes beyond the index watermark are a torn tail (exit 3)" "[ $rc -eq 3 ]"
"$BIN" init "$D5" >/dev/null 2>&1
check "opening for writing cuts it and keeps it aside" "cmp -s \"$SEG\" \"$T/seg.orig\" && ls $D5/log | grep -q torn"
out=$("$BIN" verify "$D5" 2>&1); rc=$?
check "verify passes after the cut" "[ $rc -eq 0 ]"

# init --signature (docs/keys.md "Algorithms"): the platform key's algorithm
D6=$T/ed
out=$("$BIN" init --signature EdDSA "$D6" 2>&1); rc=$?
check "init --signature EdDSA succeeds" "[ $rc -eq 0 ]" "$out"
check "... its platform key is Ed25519" "openssl pkey -in $D6/platform-key.pem -noout -text 2>/dev/null | grep -q ED25519"
out=$("$BIN" backup "$D6" "$T/set6" 2>&1); rc=$?
check "a backup of it is signed" "[ $rc -eq 0 ] && grep -q '^signature-alg EdDSA\$' $T/set6/*/manifest" "$out"
out=$("$BIN" restore "$T"/set6/* "$T/ed-restored" --platform-key "$D6/platform-cert.pem" 2>&1); rc=$?
check "it restores, checked with the platform certificate" "[ $rc -eq 0 ]" "$out"
out=$("$BIN" verify "$T/ed-restored" 2>&1); rc=$?
check "the restored directory verifies" "[ $rc -eq 0 ]" "$out"
out=$("$BIN" restore "$T"/set6/* "$T/ed-restored2" --platform-key "$D/platform-cert.pem" 2>&1); rc=$?
check "an ES256 key is refused naming both algorithms, nothing restored" \
  "[ $rc -ne 0 ] && grep -q 'signed with EdDSA, but the platform key given is a key of ES256' <<<\"\$out\" && [ ! -e $T/ed-restored2 ]" "$out"
out=$("$BIN" init --signature RS256 "$T/rs" 2>&1); rc=$?
check "init --signature RS256: refused naming the known algorithms, nothing created" \
  "[ $rc -eq 2 ] && grep -q \"unknown signature algorithm 'RS256' (known: ES256, ES384, PS256, EdDSA)\" <<<\"\$out\" && [ ! -e $T/rs ]" "$out"

sr_finish
