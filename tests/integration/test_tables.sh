#!/usr/bin/env bash
# tests/integration/test_tables.sh TABLETEST_BIN SOURCE_DIR -- issue #12
# acceptance: a route, a config key and a command added through their tables
# alone work end to end. TABLETEST_BIN is suiro-tabletest: the product's
# sources with one more row in sr_apif_routes, SR_CONFIG_KEYS and COMMANDS
# (tests/support/tabletest.h) and nothing else changed. It shows: the route
# dispatches (its caller class and method checked by the dispatcher), the
# command has --help and runs, --print-config shows the key with its default
# and a file changes it (in range), `suiro routes` lists the route and the
# OpenAPI check, reading that list, reports it missing from the spec, then
# passes once a spec fragment adds it.
set -u
BIN=$(readlink -f "$1")
ROOT=$2
. "$(dirname "$0")/lib.sh"
sr_setup tables
# the command's output and its messages together (usage errors go to stderr)
run() { out=$("$BIN" "$@" 2>&1); rc=$?; }

# ---- the command (a row of COMMANDS) --------------------------------------------
run --help
check "suiro --help lists the new command with its doc" "[ $rc -eq 0 ] && [[ \$out == *'tabletest WORD'*'prints WORD'* ]]"
run tabletest --help
check "tabletest --help prints its usage and option, exit 0" "[ $rc -eq 0 ] && [[ \$out == *'usage: suiro tabletest WORD'* && \$out == *'--upper'* ]]"
run tabletest hello
check "tabletest hello runs" "[ $rc -eq 0 ] && [ \"\$out\" = 'tabletest hello' ]"
run tabletest --upper=x hello
check "its flag refuses a value (the one option parser)" "[ $rc -eq 2 ]"
run tabletest -u hello
check "its option works" "[ $rc -eq 0 ] && [ \"\$out\" = 'tabletest HELLO' ]"
run tabletest
check "a missing argument is exit 2" "[ $rc -eq 2 ]"

# ---- the config key (a row of SR_CONFIG_KEYS) -------------------------------------
run serve --print-config
check "--print-config shows the new key with its default" "[ $rc -eq 0 ] && [[ \$out == *'[tabletest]'*'answer = 42'* ]]"
printf '[tabletest]\nanswer = 7\n' > "$T/seven.ini"
run serve --config "$T/seven.ini" --print-config
check "a config file setting it changes it" "[ $rc -eq 0 ] && [[ \$out == *'answer = 7'* && \$out != *'answer = 42'* ]]"
printf '[tabletest]\nanswer = 5000\n' > "$T/big.ini"
run serve --config "$T/big.ini" --print-config
check "... and a value out of its range is refused naming it" "[ $rc -eq 2 ] && [[ \$out == *answer* ]]"

# ---- the route (a row of sr_apif_routes) ------------------------------------------
run routes
check "suiro routes lists the new route" "[ $rc -eq 0 ] && grep -qx 'GET /api/v1/tabletest/{word}' <<<\"\$out\""
"$BIN" routes > "$T/routes"
/usr/bin/python3 "$ROOT/tests/integration/check_openapi.py" "$ROOT/docs/api/openapi.yaml" "$T/routes" > "$T/check" 2>&1
rc=$?; out=$(cat "$T/check")
check "the OpenAPI check reports it missing from the spec" "[ $rc -eq 1 ] && [[ \$out == *'only in the server'*'GET /api/v1/tabletest/{word}'* ]] && [ \$(grep -c '^only' $T/check) -eq 1 ]"
/usr/bin/python3 - "$ROOT/docs/api/openapi.yaml" "$T/spec.yaml" <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
doc["paths"]["/api/v1/tabletest/{word}"] = {"get": {"summary": "the table test's route",
                                                    "responses": {"200": {"description": "the word"}}}}
yaml.safe_dump(doc, open(sys.argv[2], "w"))
PY
/usr/bin/python3 "$ROOT/tests/integration/check_openapi.py" "$T/spec.yaml" "$T/routes" > "$T/check" 2>&1
rc=$?; out=$(cat "$T/check")
check "... and passes with a spec fragment that adds it" "[ $rc -eq 0 ]"

D=$T/data
"$BIN" init --demo "$D" >/dev/null
sr_start --data "$D" --mqtt "" --http 127.0.0.1:0
P=$HP
U=http://127.0.0.1:$P/api/v1
req() { # METHOD PATH [TOKEN] -> "CODE BODY"
  curl -s -o "$T/body" -w '%{http_code}' -X "$1" "$U$2" ${3:+-H "Authorization: Bearer $3"} > "$T/code"
  echo "$(cat "$T/code") $(cat "$T/body")"
}
TOK=$(curl -s -X POST "$U/sessions" -d '{"operatorId":"demo","appId":"APP001","secret":"demo-app001-secret"}' |
      sed -n 's/.*"token":"\([0-9a-f]*\)".*/\1/p')
check "an app session opens" "[ \${#TOK} -eq 64 ]"
r=$(req GET /tabletest/h%C3%A9llo "$TOK")
check "the new route dispatches to its handler with its parameter by name (decoded)" "[[ \"\$r\" == '200 '*'\"word\":\"héllo\"'*'\"operatorId\":\"demo\"'* ]]"
r=$(req GET /tabletest/hello)
check "its caller class is checked by the dispatcher (no token: 401 E2001)" "[[ \"\$r\" == 401*E2001* ]]"
r=$(req POST /tabletest/hello "$TOK")
check "another method on its path is 405" "[[ \"\$r\" == 405* ]]"
r=$(req GET /tabletest "$TOK")
check "its path without the parameter is 404" "[[ \"\$r\" == 404*E3001* ]]"
sr_stop
check "the server stops cleanly" "[ $rc -eq 0 ]"
sr_finish tables
