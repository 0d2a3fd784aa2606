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
