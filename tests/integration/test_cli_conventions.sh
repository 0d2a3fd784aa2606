#!/usr/bin/env bash
# tests/integration/test_cli_conventions.sh -- the command line's conventions
# (issue #12 section 6) through the real binary, table-driven over every
# command and subcommand: --help and -h print usage on stdout, exit 0 and
# create nothing; an unknown option and a stray argument exit 2 naming it;
# --opt=value works; a missing or non-suiro DIR is refused by every command
# but init, creating nothing; replay's times (an offset, a fraction, -1h),
# dataIds and numbers as sent (also apsim's); verify and log verify agree on
# exit codes and JSON for an intact, a corrupt and a torn log; an encrypted
# log without a key names --key-file; version prints the commit.
# usage: test_cli_conventions.sh SUIRO_BIN [SOURCE_DIR]
set -u
BIN=$(readlink -f "$1")
SRC=${2:-}
. "$(dirname "$0")/lib.sh"
sr_setup conv
sr_on_fail() { echo "  rc=${rc:-} out=${out:0:300} err=$(head -c 300 "$T/err" 2>/dev/null)"; }
# run ARGS...: in the empty directory $W; stdout in $out, stderr in $T/err, exit in $rc
W=$T/cwd
mkdir -p "$W"
run() { sr_run "$@"; }
listing() { sr_listing "$1"; }

# ---- 1. --help and -h: every command and subcommand ----------------------------
# The commands come from the binary's own help (its COMMANDS table, api/cli/main.c),
# so a new command is checked without an edit here: `suiro --help` lists each
# leaf ("sheet import FILE DIR", "apsim COMMAND [ARGS]"); a group's subcommands
# are in `suiro GROUP --help` ("subcommands:"), apsim's in its "commands" list.
TOP=$("$BIN" --help 2>/dev/null | awk '/^commands:/{on=1; next} on && /^  [a-z]/{print} on && /^$/{exit}')
# a leaf's words up to its first argument (an upper-case word or a bracket)
leaf_name() {
  awk '{n=""; for (i=1;i<=NF;i++) { if ($i !~ /^[a-z][a-z-]*$/) break; n = n (n?" ":"") $i } print n}' <<<"$1"
}
# the leaf with its arguments filled: DIR the missing directory, FILE a file
leaf_args() {
  awk -v d="$2" -v f="$3" '{s=""; for (i=1;i<=NF;i++) { w=$i
    if (w ~ /^[a-z][a-z-]*$/) ; else if (w=="DIR" || w=="DEST" || w=="BACKUP") w=d; else if (w=="FILE") w=f; else break
    s = s (s?" ":"") w } print s}' <<<"$1"
}
LEAFS=()
while IFS= read -r l; do
  l=${l#  }; l=${l%%  *}
  LEAFS+=("$l")
done <<<"$TOP"
check "suiro --help lists the commands" "[ \${#LEAFS[@]} -ge 16 ]"
CMDS=("")
GROUPS_SEEN=" "
for l in "${LEAFS[@]}"; do
  n=$(leaf_name "$l")
  g=${n%% *}
  if [ "$g" != "$n" ] && [[ "$GROUPS_SEEN" != *" $g "* ]]; then
    GROUPS_SEEN="$GROUPS_SEEN$g "
    CMDS+=("$g")
    # the group's own help names the same subcommands
    sub=$("$BIN" "$g" --help 2>/dev/null | awk '/^subcommands:/{on=1; next} on && /^  [a-z]/{print $1" "$2} on && /^$/{exit}')
    check "suiro $g --help lists its subcommands ($n among them)" "grep -qx '$n' <<<\"\$sub\""
  fi
  CMDS+=("$n")
done
# apsim's commands (apsim COMMAND): from its help; ARGLESS takes no argument of its own
APSIM=()
APSIM_ARGLESS=()
APSIM_SEEN=" "
while read -r a rest; do
  [[ "$APSIM_SEEN" == *" $a "* ]] && continue # load has two forms
  APSIM_SEEN="$APSIM_SEEN$a "
  APSIM+=("$a")
  case "$rest" in ""|-*|"["*) APSIM_ARGLESS+=("$a") ;; esac
done < <("$BIN" apsim --help 2>/dev/null | awk '/^commands/{on=1; next}
  on && /^  [a-z]/{sub(/^  /,""); print; if (match($0, /\|   [a-z][a-z-]*/)) print substr($0, RSTART+4)}' | sed 's/  */ /g')
check "suiro apsim --help lists its commands" "[ \${#APSIM[@]} -ge 20 ] && [ \${#APSIM_ARGLESS[@]} -ge 5 ]"
for a in "${APSIM[@]}"; do CMDS+=("apsim $a"); done
for c in "init" "sheet import" "gwsim run" "log append" "apsim" "apsim login" "apsim load" "routes" "version"; do
  check "the derived list has $c" "printf '%s\n' \"\${CMDS[@]}\" | grep -qx '$c'"
done
before=$(listing "$W")
for c in "${CMDS[@]}"; do
  for h in --help -h; do
    # shellcheck disable=SC2086
    run $c "$h"
    check "suiro $c $h: exit 0, usage on stdout, nothing created" \
      "[ $rc -eq 0 ] && grep -q '^usage: suiro' <<<\"\$out\" && [ \"\$(listing \"$W\")\" = \"\$before\" ]"
  done
done
# with a DIR that does not exist: the help, not the directory
for c in "init" "rebuild" "replay" "verify" "log verify" "log dump" "log append"; do
  # shellcheck disable=SC2086
  run $c "$T/nodir" --help
  check "suiro $c DIR --help creates no DIR" "[ $rc -eq 0 ] && [ ! -e $T/nodir ] && grep -q '^usage:' <<<\"\$out\""
done
run serve --data "$T/nodir" --help
check "suiro serve --data DIR --help: usage, no DIR" "[ $rc -eq 0 ] && [ ! -e $T/nodir ]"
run gwsim sheet --help
check "gwsim sheet --help prints no sheet" "! grep -q 'suiro-setup-sheet' <<<\"\$out\""

# ---- 2. an unknown option and a stray argument: exit 2, named --------------------
D0=$T/missing
# every leaf of `suiro --help` with its arguments (DIR missing), and every apsim command
LEAVES=()
for l in "${LEAFS[@]}"; do
  n=$(leaf_name "$l")
  [ "$n" = apsim ] || LEAVES+=("$(leaf_args "$l" "$D0" "$T/f")")
done
for a in "${APSIM[@]}"; do
  run apsim "$a" --no-such-option
  check "suiro apsim $a --no-such-option: exit 2 naming it" "[ $rc -eq 2 ] && grep -q -- '--no-such-option' $T/err && grep -q 'help' $T/err"
done
for a in "${APSIM_ARGLESS[@]}"; do
  [ "$a" = logout ] || LEAVES+=("apsim $a")
done
for c in "${LEAVES[@]}"; do
  # shellcheck disable=SC2086
  run $c --no-such-option
  check "suiro $c --no-such-option: exit 2 naming it" "[ $rc -eq 2 ] && grep -q -- '--no-such-option' $T/err && grep -q 'help' $T/err"
  # shellcheck disable=SC2086
  run $c --no-such-option=1
  check "suiro $c --no-such-option=1: exit 2 naming it" "[ $rc -eq 2 ] && grep -q -- \"'--no-such-option'\" $T/err"
  # shellcheck disable=SC2086
  run $c stray-argument
  check "suiro $c stray-argument: exit 2 naming it" "[ $rc -eq 2 ] && grep -q 'stray-argument' $T/err"
done
run apsim logout stray-argument
check "suiro apsim logout stray-argument: exit 2 naming it" "[ $rc -eq 2 ] && grep -q 'stray-argument' $T/err"
run log verify "$D0" --json=yes
check "a flag given a value is named" "[ $rc -eq 2 ] && grep -q -- '--json' $T/err"
run replay "$D0" --from
check "a missing value is named" "[ $rc -eq 2 ] && grep -q -- '--from' $T/err"
# a usage error is found before the directory is looked at
for c in "replay $D0 --from yesterday" "replay $D0 --point P001" "log dump $D0 --count x" "sheet export $D0" \
         "cert import $D0 --operator demo --pem $T/f"; do
  # shellcheck disable=SC2086
  run $c
  check "suiro $c: a usage error (2), before the directory" "[ $rc -eq 2 ]"
done
check "none of it created a directory" "[ ! -e $D0 ]"

# ---- 3. only init creates a data directory ------------------------------------------
NS=$T/notsuiro
mkdir -p "$NS" && echo hello > "$NS/x.txt"
printf '#suiro-setup-sheet v1\n' > "$T/f"
printf 'line\n' > "$T/lines"
for target in "$D0" "$NS"; do
  DIRCMDS=("sheet import $T/f $target" "sheet export $target --operator demo" "rebuild $target" "replay $target"
           "verify $target" "cert import $target --operator demo --app APP001 --pem $T/f" "log verify $target"
           "log dump $target" "serve --data $target --mqtt 127.0.0.1:0")
  for c in "${DIRCMDS[@]}"; do
    # shellcheck disable=SC2086
    run $c
    check "suiro $c: refused (non-zero, says so), nothing created" \
      "[ $rc -ne 0 ] && [ $rc -ne 2 ] && grep -q -- '$target' $T/err && [ ! -e $D0 ] && [ \"\$(ls $NS)\" = x.txt ]"
  done
  out=$(cd "$W" && "$BIN" log append "$target" < "$T/lines" 2>"$T/err"); rc=$?
  check "suiro log append $target: refused, nothing created" "[ $rc -ne 0 ] && [ ! -e $D0 ] && [ \"\$(ls $NS)\" = x.txt ]"
done
D=$T/data
run init --demo "$D"
check "init creates a data directory" "[ $rc -eq 0 ] && [ -d $D/log ]"

# ---- 4. DIR is the data directory for the log commands (a log directory still works)
run log verify "$D"
check "log verify DATA-DIR" "[ $rc -eq 0 ] && grep -q '^ok:' <<<\"\$out\""
run log verify "$D/log"
check "log verify LOG-DIR (still accepted)" "[ $rc -eq 0 ] && grep -q '^ok:' <<<\"\$out\""
out=$("$BIN" log append "$D" < "$T/lines" 2>"$T/err"); rc=$?
check "log append refuses a data directory (its log holds events only)" "[ $rc -ne 0 ] && grep -q 'data directory' $T/err"
mkdir -p "$T/rawlog"
out=$("$BIN" log append "$T/rawlog" < "$T/lines" 2>"$T/err"); rc=$?
check "log append starts a log in an existing empty directory" "[ $rc -eq 0 ] && ls $T/rawlog | grep -q '\.seg$'"
run log dump "$D" --count=2
check "log dump DATA-DIR --count=2 (--opt=value)" "[ $rc -eq 0 ] && [ \$(wc -l <<<\"\$out\") -eq 2 ]"
run log dump "$T/rawlog"
check "log dump LOG-DIR" "[ $rc -eq 0 ] && grep -q '\"text\":\"line\"' <<<\"\$out\""

# ---- 5. --opt=value ---------------------------------------------------------------
run replay "$D" --from=3 --to=5
check "replay --from=3 --to=5" "[ $rc -eq 0 ] && [ \$(wc -l <<<\"\$out\") -eq 3 ]"
run sheet export "$D" --operator=demo
check "sheet export --operator=demo" "[ $rc -eq 0 ] && grep -q '^\[datapoints\]' <<<\"\$out\""
run gwsim sheet --gateways=2 --points=1 --operator=opx
check "gwsim sheet --gateways=2 --points=1 --operator=opx" "[ $rc -eq 0 ] && grep -q '^SIM0002,' <<<\"\$out\" && grep -q '^opx,' <<<\"\$out\""

# ---- 6. replay's times: one RFC 3339 parser (offsets, fractions, relative) ----------
# the last event's ingest time X.m (UTC): an event made where m is in 5..499 ms
# (then --from X.5 excludes it only if .5 is 500 ms, not 5 ms)
pyq() { python3 -c "$1" "${@:2}"; }
# (today's replay prints ingest_ms: read either, so the time checks below test the parsing)
last_ingest() { "$BIN" replay "$D" | tail -1 | pyq 'import json,sys,datetime as d
e = json.loads(sys.stdin.read())
ms = e.get("ingest_ms")
print(e["ingest"] if "ingest" in e else d.datetime.fromtimestamp(ms / 1000, d.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000))'; }
n=0
for i in $(seq 8); do
  # start at ~100 ms past a second
  pyq 'import time; t=time.time(); f=t%1; time.sleep((1.1-f) if f>0.1 else (0.1-f))'
  sed "s/^GW001,[^,]*,/GW001,Intake gateway $i,/" <("$BIN" sheet export "$D" --operator demo) > "$T/ren.csv"
  "$BIN" sheet import "$T/ren.csv" "$D" >/dev/null 2>&1
  X=$(last_ingest)
  m=-1
  [[ ${X:20:3} =~ ^[0-9]{3}$ ]] && m=$((10#${X:20:3}))
  if [ "$m" -ge 5 ] && [ "$m" -lt 500 ]; then n=1; break; fi
done
check "an event with a usable ingest time (ms $m of $X)" "[ $n -eq 1 ]"
total=$("$BIN" replay "$D" | wc -l)
sec=${X:0:19}
nlast=$("$BIN" replay "$D" --from "${sec}.${X:20:3}Z" | wc -l)
check "replay --from the last event's own time (UTC) shows it" "[ $nlast -ge 1 ]"
run replay "$D" --from "${sec}.5Z"
check "replay --from X.5Z: .5 is 500 ms (the event at .$m is before it)" "[ $rc -eq 0 ] && [ \$(grep -c . <<<\"\$out\") -eq 0 ]"
run replay "$D" --to "${sec}.5Z"
check "replay --to X.5Z: the event at .$m is before it" "[ $rc -eq 0 ] && [ \$(grep -c . <<<\"\$out\") -eq $total ]"
# the same instant written with +09:00
epoch=$(date -u -d "${sec}Z" +%s 2>/dev/null || echo 0)
local9=$(date -u -d "@$((epoch + 9 * 3600))" +%Y-%m-%dT%H:%M:%S).${X:20:3}+09:00
run replay "$D" --from "$local9"
check "replay --from $local9 (an offset): the same events as in UTC" "[ $rc -eq 0 ] && [ \$(grep -c . <<<\"\$out\") -eq $nlast ]"
localm5=$(date -u -d "@$((epoch - 5 * 3600))" +%Y-%m-%dT%H:%M:%S).${X:20:3}-05:00
run replay "$D" --to "$localm5"
check "replay --to $localm5 (a negative offset): the events before it" "[ $rc -eq 0 ] && [ \$(grep -c . <<<\"\$out\") -eq $((total - nlast)) ]"
run replay "$D" --from -1h
check "replay --from -1h: every (fresh) event" "[ $rc -eq 0 ] && [ \$(grep -c . <<<\"\$out\") -eq $total ]"
run replay "$D" --to=-1h
check "replay --to=-1h: none" "[ $rc -eq 0 ] && [ \$(grep -c . <<<\"\$out\") -eq 0 ]"
run replay "$D" --to now
check "replay --to now: every event" "[ $rc -eq 0 ] && [ \$(grep -c . <<<\"\$out\") -eq $total ]"
run replay "$D" --from -1x
check "replay --from -1x: a usage error naming it" "[ $rc -eq 2 ] && grep -q -- '-1x' $T/err"

# ---- 7. replay (and apsim) print dataIds, RFC 3339 times and numbers as sent --------
sr_start --data "$D" --mqtt 127.0.0.1:0 --http 127.0.0.1:0
P=$HP
check "the server starts" "[ -n '$P' ]"
U=http://127.0.0.1:$P
TOK=$(sr_token "$U/gw/v1/sessions" '{"operatorId":"demo","gatewayId":"GW001","secret":"demo-gw001-secret"}')
r=$(curl -s -X POST "$U/gw/v1/measurements" -H 'Content-Type: application/json' -H "Authorization: Bearer $TOK" \
  -d '{"header":{"messageType":"GW_MEASUREMENTS","messageId":"c-1"},"body":{"values":[{"dataId":"P001","timestamp":"2026-11-22T05:21:00.5Z","value":0.1},{"dataId":"P002","timestamp":"2026-11-22T05:21:00Z","value":0.3}]}}')
check "a measurement of 0.1 is stored" "grep -q '\"code\":\"0\"' <<<'$r'"
run replay "$D" --kind measurements
check "replay names the data point (dataId)" "grep -q '\"point\":[0-9]*,\"dataId\":\"P001\"' <<<\"\$out\""
check "replay prints 0.1 as sent (not 0.10000000000000001)" "grep -q '\[\"2026-11-22T05:21:00.500Z\",0.1,0\]' <<<\"\$out\" && ! grep -q '0000000000' <<<\"\$out\""
check "replay prints RFC 3339 times" "grep -q '\"ingest\":\"20[0-9-]*T[0-9:.]*Z\"' <<<\"\$out\""
run replay "$D" --kind measurements --operator demo --point P001
check "replay --point P001" "[ $rc -eq 0 ] && [ \$(grep -c . <<<\"\$out\") -eq 1 ]"
export SUIRO_URL=$U SUIRO_APP_SECRET=demo-app001-secret
run apsim latest --data-id P001
check "apsim prints 0.1 as sent" "[ $rc -eq 0 ] && grep -q '\"value\":0.1[,}]' <<<\"\$out\""
run apsim stored-values --data-id=P001 --from=-1000d --pretty
check "apsim --pretty prints 0.1 as sent (and --opt=value)" "[ $rc -eq 0 ] && grep -q '\"value\": 0.1,' <<<\"\$out\" && ! grep -q '0000000000' <<<\"\$out\""
sr_stop

# ---- 8. verify and log verify: the same exit codes and JSON --------------------------
# both --json objects: the same verdict and the same log members
agree() { # EXPECTED-CODE NAME
  local want=$1 name=$2
  "$BIN" verify "$V" --json > "$T/v.json" 2> "$T/v.err"; local rv=$?
  "$BIN" log verify "$V" --json > "$T/l.json" 2> "$T/l.err"; local rl=$?
  "$BIN" verify "$V" > "$T/v.txt" 2> "$T/v2.err"
  "$BIN" log verify "$V" > "$T/l.txt" 2> "$T/l2.err"
  check "$name: verify exits $want ($rv), log verify exits $want ($rl)" "[ $rv -eq $want ] && [ $rl -eq $want ]"
  check "$name: --json agrees (verdict and every log member)" "python3 - $T/v.json $T/l.json <<'EOF'
import json, sys
v = json.load(open(sys.argv[1])); l = json.load(open(sys.argv[2]))
sys.exit(0 if v['verdict'] == l['verdict'] and all(v.get(k) == l[k] for k in l) else 1)
EOF"
  if [ "$want" -ne 0 ]; then
    check "$name: the findings go to stderr" "[ ! -s $T/l.txt ] && [ -s $T/l2.err ] && [ -s $T/v2.err ]"
  fi
}
V=$T/v
"$BIN" init --demo "$V" > /dev/null
agree 0 "intact"
SEG=$V/log/00000000000000000001.seg
cp "$SEG" "$T/seg.orig"
sz=$(stat -c %s "$SEG")
printf '\x5a' | dd of="$SEG" bs=1 seek=$((sz - 5)) conv=notrunc status=none
agree 1 "corrupt (a flipped byte in the applied last block)"
cp "$T/seg.orig" "$SEG"
printf 'SRBKxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' >> "$SEG"
agree 3 "torn tail only"
check "torn tail: the verdict is torn-tail" "grep -q '\"verdict\":\"torn-tail\"' $T/v.json"
rm -rf "$T/miss"
"$BIN" verify "$T/miss" --json > "$T/v.json" 2>/dev/null; rv=$?
"$BIN" log verify "$T/miss" --json > "$T/l.json" 2>/dev/null; rl=$?
check "missing: both exit 4, verdict unreadable" "[ $rv -eq 4 ] && [ $rl -eq 4 ] && grep -q unreadable $T/v.json && grep -q unreadable $T/l.json"

# an encrypted log without its key: the message says to give --key-file
mkdir -p "$T/keys"
python3 -c 'import os; print(os.urandom(32).hex())' > "$T/keys/k.hex"
E=$T/enc
"$BIN" init --demo "$E" --key-file "$T/keys/k.hex" > /dev/null 2>&1
run verify "$E" --key-file="$T/keys/k.hex"
check "an encrypted directory verifies with --key-file=F" "[ $rc -eq 0 ]"
# the key's other sources (docs/configuration.md "Where the key comes from")
SR_TEST_LOGKEY=$(cat "$T/keys/k.hex")
export SR_TEST_LOGKEY
run verify "$E" --key-file env:SR_TEST_LOGKEY
check "--key-file env:VAR: the key from the environment" "[ $rc -eq 0 ]"
run log verify "$E" --key-file "cmd:cat $T/keys/k.hex"
check "--key-file cmd:COMMAND: the key a command prints" "[ $rc -eq 0 ]"
run replay "$E" --key-file "file:$T/keys/k.hex"
check "--key-file file:PATH" "[ $rc -eq 0 ]"
run verify "$E" --key-file env:SR_TEST_NO_SUCH_KEY
check "an unset variable: refused naming the source" "[ $rc -ne 0 ] && grep -q 'env:SR_TEST_NO_SUCH_KEY: the environment variable is not set' $T/err"
run verify "$E" --key-file "cmd:exit 3"
check "a failing command: refused with its status" "[ $rc -ne 0 ] && grep -q 'cmd:exit 3: exited with status 3' $T/err"
run verify "$E" --key-file "cmd:python3 -c 'import os; print(os.urandom(32).hex())'"
check "another key from a command: refused as the wrong key" "[ $rc -ne 0 ] && grep -qi 'key' $T/err"
unset SR_TEST_LOGKEY
for c in "verify" "replay" "rebuild" "log dump" "sheet export"; do
  # shellcheck disable=SC2086
  run $c "$E" $([ "$c" = "sheet export" ] && echo --operator demo)
  check "suiro $c on an encrypted log without a key: names --key-file" "[ $rc -ne 0 ] && [ $rc -ne 2 ] && grep -q -- '--key-file' $T/err"
done
# the log's chain needs no key (format.md version 3): log verify checks it and
# says that the sealed contents were not opened, naming --key-file
run log verify "$E"
check "suiro log verify on an encrypted log without a key: the chain verifies, the contents not opened, names --key-file" \
  "[ $rc -eq 0 ] && grep -q 'were not opened' <<<\"\$out\" && grep -q -- '--key-file' <<<\"\$out\""
# the engine commands' errors start "suiro COMMAND:", as every command's do
for c in "sheet export" "replay" "sheet import $T/f"; do
  # shellcheck disable=SC2086
  run $c "$E" $([ "$c" = "sheet export" ] && echo --operator demo)
  n=${c% $T/f}
  check "suiro $n on an encrypted log without a key: the error starts 'suiro $n: '" \
    "[ $rc -eq 1 ] && head -1 $T/err | grep -q -- '^suiro $n: '"
  [ "$n" = replay ] || check "suiro $n: then the directory ('suiro $n: $E: ')" "head -1 $T/err | grep -q -- '^suiro $n: $E: '"
done

# ---- 9. version ------------------------------------------------------------------
run version
check "version prints the version and a commit" "[ $rc -eq 0 ] && grep -Eq '^suiro [0-9]+\.[0-9]+\.[0-9]+ \(commit ([0-9a-f]{7,}|unknown)\)$' <<<\"\$out\" && ! grep -q 'commit unknown' <<<\"\$out\""
if [ -n "$SRC" ] && head=$(git -C "$SRC" rev-parse --short=12 HEAD 2>/dev/null); then
  echo "  (built at $out, source at $head)"
fi

sr_finish
