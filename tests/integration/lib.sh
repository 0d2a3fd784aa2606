# tests/integration/lib.sh -- what the shell integration tests share (the
# Python ones share srtest.py). Sourced, never run:
#     set -u; BIN=...; . "$(dirname "$0")/lib.sh"; sr_setup NAME
# Contract: sr_setup makes the temporary directory $T (removed at exit), sets
# the counters and a cleanup trap that stops, by PID only, the server ($SRV)
# and gwsim ($GWS) this script started. check/ok/bad/skip print the
# "ok:"/"FAIL:"/"skip:" lines and count; sr_finish prints the counts and is the
# script's verdict. sr_start runs `suiro serve` on ports the kernel picks and
# waits a bounded time for its `listening` lines; sr_stop stops it by PID.
# Nothing here needs more than bash, curl and /usr/bin/python3.

sr_setup() { # NAME: $T, the counters, the exit trap
  T=$(mktemp -d "${TMPDIR:-/tmp}/suiro-$1-XXXXXX")
  SRV= GWS=
  passes=0 fails=0 skips=0
  trap sr_cleanup EXIT
}

sr_cleanup() {
  [ -n "${GWS:-}" ] && kill -9 "$GWS" 2>/dev/null
  [ -n "${SRV:-}" ] && kill -9 "$SRV" 2>/dev/null
  rm -rf "$T"
}

ok()   { passes=$((passes+1)); echo "ok: $1"; }
bad()  { fails=$((fails+1)); echo "FAIL: $1"; }
skip() { skips=$((skips+1)); echo "skip: $1"; }
# check NAME CONDITION [DETAIL]: CONDITION is eval'd; on failure DETAIL is
# printed with the name and the script's sr_on_fail (if it defines one) runs
check() {
  if eval "$2"; then ok "$1"
  else bad "$1${3:+ ($3)}"; if declare -F sr_on_fail >/dev/null; then sr_on_fail; fi; fi
}

# sr_finish [LABEL]: the counts (the server's log tail when a check failed); the exit status
sr_finish() {
  if [ "$fails" -ne 0 ] && [ -s "$T/log" ]; then echo "--- server log (tail)"; tail -20 "$T/log"; fi
  local sk=
  [ "$skips" -ne 0 ] && sk=", $skips skipped"
  echo "${1:+$1: }$passes passed, $fails failed$sk"
  [ "$fails" -eq 0 ]
}

# sr_run ARGS...: `$BIN ARGS` in ${W:-.}, stdout in $out, stderr in $T/err, exit in $rc
sr_run() { out=$(cd "${W:-.}" && timeout 60 "$BIN" "$@" 2>"$T/err"); rc=$?; }
# sr_listing DIR: every path under DIR, sorted (to show that nothing was created)
sr_listing() { (cd "$1" && find . | sort); }

# sr_start ARGS...: `$BIN serve ARGS` in the background (stdout in $T/out,
# stderr appended to $T/log); waits at most SR_START_WAIT seconds (20) for its
# `listening http=` or `listening https=` line, or for it to exit. Sets SRV
# (the PID), HP (the HTTP(S) port), MP (the MQTT port, when it listens on
# one); fails when no HTTP port was printed.
sr_start() {
  : > "$T/out"
  "$BIN" serve "$@" > "$T/out" 2>> "$T/log" &
  SRV=$!
  local i
  for ((i = 0; i < ${SR_START_WAIT:-20} * 20; i++)); do
    grep -q '^listening https\{0,1\}=' "$T/out" 2>/dev/null && break
    kill -0 "$SRV" 2>/dev/null || break
    sleep 0.05
  done
  HP=$(sed -n 's/^listening https\{0,1\}=.*:\([0-9]*\)$/\1/p' "$T/out")
  MP=$(sed -n 's/^listening mqtt=.*:\([0-9]*\)$/\1/p' "$T/out")
  [ -n "$HP" ]
}
# sr_stop [SIGNAL]: signal the server (TERM by default) by its PID, wait for it; its exit status in $rc
sr_stop() {
  rc=
  [ -n "${SRV:-}" ] || return 0
  kill -"${1:-TERM}" "$SRV" 2>/dev/null
  wait "$SRV" 2>/dev/null; rc=$?
  SRV=
}

# sr_free_port: a TCP port on 127.0.0.1 that nobody listens on now
sr_free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# sr_json EXPR: EXPR over d, the JSON document on stdin; a tuple prints space-separated
sr_json() {
  /usr/bin/python3 -c 'import json, sys
d = json.load(sys.stdin); r = eval(sys.argv[1])
print(*r) if isinstance(r, tuple) else print(r)' "$1" 2>/dev/null
}

# sr_token URL BODY: POST BODY (JSON) to URL (a sessions endpoint); prints the token
sr_token() {
  curl -s -X POST "$1" -H 'Content-Type: application/json' -d "$2" | sed -n 's/.*"token":"\([0-9a-f]*\)".*/\1/p'
}
