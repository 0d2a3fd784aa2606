#!/usr/bin/env bash
# bench/callgrind.sh BUILD -- instruction counts of suiro's hot paths under
# `valgrind --tool=callgrind`: per ingested value, per latest lookup, per raw
# sample read, per one-day downsample, per one-year downsample to hours, per
# GW-IF message parsed. Instruction
# counts hardly move on a noisy, shared machine (a run-to-run spread well
# under 1 %, against 2x for wall-clock rates), so bench/compare can tell a
# real change from noise with them.
#
#   bash bench/callgrind.sh build          (bench/run.sh calls it so)
#
# Small, seeded runs of the bench programs, each under callgrind with
# collection on only inside the measured functions (--toggle-collect), so
# data generation, loading and verification are not counted:
#   ingest_point   engine_ingest --points 20 --seconds 3600, collecting
#                  writer_main (the writer thread: decode, validate, log
#                  append, index, heads, chunk flushes and late merges) and
#                  sr_engine_submit (the caller's side); minus the same run
#                  with --seconds 1800, divided by the difference in values
#                  sent: the marginal cost of a value, without engine open,
#                  masters and the first, cheaper head-only samples.
#   latest         engine_query --points 1 (2 days), 2,000 sr_engine_latest
#   raw_point      the same data, 4 full-range sr_engine_range calls, per
#                  sample returned (172,800 a call)
#   downsample_1d  the same data, 20 sr_engine_downsample calls (one day of
#                  1 s values into 1-minute buckets), per call
#   downsample_1y_1h  downsample_year --days 365 --reps 1 --old 0: one
#                  year of 1 s values (31.5 M, 30,797 chunks of 1,024, in
#                  memory) into 8,760 one-hour buckets through
#                  sr_chunk_dec_init + sr_chunk_dec_agg (chunk summaries;
#                  no LMDB), collecting ds_year, per call
#   gw_parse_msg   gw_parse: 200 sr_gw_fast calls on GW_MEASUREMENTS
#                  payloads of 100 values, per message
#   gw_parse_snapshot  gw_parse --points 100: the same on snapshots (each
#                  message 100 different points x 1 value, one timestamp),
#                  per value: the network loop's parse, dataId -> point and
#                  event build on the snapshot shape
# Every engine figure above (ingest_point, ingest_snapshot, latest, raw_point,
# downsample_1d) runs twice in the same run: with the index sealed (the
# default, --enc 1: per-operator data keys, layout 8) under its name, and with
# the index plain (--enc 2: one key for all, no keyring) as
# "<what>_plain_index"; a "sealed_ratio" line per figure then gives sealed /
# plain (issue #16's goal: within 10 %; docs/keys.md).
# (engine_query runs one phase at a time: sr_engine_downsample calls
# sr_engine_range, and nested toggles would cancel.) Syscalls cost nothing
# here (fdatasync is not an instruction); this is CPU work only.
#
# Prints one JSON line per figure on stdout:
#   {"bench":"callgrind","what":..,"instr":..,"per":..,"unit":..,
#    "instr_per_unit":..,"program":..,"args":..,"collect":..,"valgrind":..,
#    "verify":"ok"|"FAILED"}
# "verify" is the measured program's own verification (and a non-zero count).
# Takes about ten minutes on 2 cores (the engine's figures twice) (one at a time: callgrind serializes
# threads; the snapshot ingest pair takes about half of it, generating and
# encoding the year most of the rest).
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$(cd "$BUILD" && pwd)/bench
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)

die() { echo "callgrind: $*" >&2; exit 1; }
for p in engine_ingest engine_query gw_parse downsample_year; do
  [ -x "$BIN/$p" ] || die "no $BIN/$p (build first: cmake -S . -B $BUILD && cmake --build $BUILD)"
done
if ! command -v valgrind >/dev/null 2>&1; then
  echo "callgrind: valgrind is missing; trying: bash scripts/deps.sh --bench" >&2
  bash "$ROOT/scripts/deps.sh" --bench >&2 || true
  command -v valgrind >/dev/null 2>&1 || die "valgrind (Debian package 'valgrind') is not installed; run 'bash scripts/deps.sh --bench' as root"
fi
VGV=$(valgrind --version)

T=$(mktemp -d "${TMPDIR:-/var/tmp}/suiro-callgrind-XXXXXX")
trap 'rm -rf "$T"' EXIT
trap 'exit 130' INT TERM

# run NAME "TOGGLE ..." PROGRAM ARGS...: the program under callgrind, with
# collection on inside the toggled functions only. Prints "COLLECTED RC" on
# the first line, then the program's last stdout line (its JSON), or {}.
run() {
  local name=$1 toggles=$2 prog=$3 rc=0 t args=()
  shift 3
  for t in $toggles; do args+=("--toggle-collect=$t"); done
  echo "callgrind: $name: $prog $*" >&2
  valgrind --tool=callgrind --collect-atstart=no "${args[@]}" --callgrind-out-file="$T/$name.out" \
    "$BIN/$prog" "$@" > "$T/$name.json" 2> "$T/$name.err" || rc=$?
  [ "$rc" = 0 ] || { echo "callgrind: $name exited $rc" >&2; tail -n 5 "$T/$name.err" >&2; }
  local total
  total=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$T/$name.out" 2>/dev/null | head -n 1)
  echo "${total:-0} $rc"
  tail -n 1 "$T/$name.json" 2>/dev/null | grep '^{' || echo '{}'
}

# line WHAT UNIT PROGRAM ARGS COLLECT INSTR PER VERIFY: one JSON result line
line() {
  "$PY" - "$@" "$VGV" <<'EOF'
import json, sys
what, unit, prog, args, collect, instr, per, verify, vgv = sys.argv[1:10]
instr, per = int(instr or 0), int(per or 0)
ok = verify == "ok" and instr > 0 and per > 0
print(json.dumps({"bench": "callgrind", "what": what, "instr": instr, "per": per, "unit": unit,
                  "instr_per_unit": round(instr / per, 1) if per > 0 else None,
                  "program": prog, "args": args, "collect": collect, "valgrind": vgv,
                  "verify": "ok" if ok else "FAILED"}, separators=(",", ":")))
EOF
}

# field JSON KEY...: the value of each key (space separated; "" if missing)
field() {
  "$PY" -c 'import json,sys
d = json.loads(sys.argv[1])
print(" ".join(str(d.get(k, "")) for k in sys.argv[2:]))' "$@"
}

# verdict RC JSON: ok when the program exited 0 and verified its result
verdict() { [ "$1" = 0 ] && [ "$(field "$2" verify)" = ok ] && echo ok || echo FAILED; }

# ---- the engine's figures, with the index sealed and plain -------------------
# Each engine figure is counted twice in this run (issue #16, docs/keys.md
# "The index: sealed values"): as it runs by default (--enc 1: per-operator
# data keys, the index's values sealed, layout 8) under its usual name, and
# with the index plain (--enc 2: one key seals the log, no keyring) as
# "<what>_plain_index"; then one "sealed_ratio" line per figure: sealed / plain
# instructions, against the goal of issue #16 (within 10 %).
# engine_figures ENC SUF: ENC "" (the default, sealed) or 2; SUF "" or _plain_index.
engine_figures() {
  local enc=$1 suf=$2 e=() i1 rc1 j1 i0 rc0 j0 v1 v0 v
  [ -n "$enc" ] && e=(--enc "$enc")
  { read -r i1 rc1; read -r j1; } < <(run "ingest_full$suf" "$ING" engine_ingest --points 20 --seconds 3600 "${e[@]}" --dir "$T")
  { read -r i0 rc0; read -r j0; } < <(run "ingest_base$suf" "$ING" engine_ingest --points 20 --seconds 1800 "${e[@]}" --dir "$T")
  v1=$(field "$j1" values_sent); v0=$(field "$j0" values_sent)
  v=ok
  [ "$(verdict "$rc1" "$j1")" = ok ] && [ "$(verdict "$rc0" "$j0")" = ok ] || v=FAILED
  line "ingest_point$suf" value engine_ingest "--points 20 --seconds 3600 minus --seconds 1800${enc:+ --enc $enc}" "${ING// /,}" \
    "$((i1 - i0))" "$(( ${v1:-0} - ${v0:-0} ))" "$v"

  { read -r i1 rc1; read -r j1; } < <(run "snapshot_full$suf" "$ING" engine_ingest --shape snapshot --points 200 --seconds 1200 "${e[@]}" --dir "$T")
  { read -r i0 rc0; read -r j0; } < <(run "snapshot_base$suf" "$ING" engine_ingest --shape snapshot --points 200 --seconds 600 "${e[@]}" --dir "$T")
  v1=$(field "$j1" values_sent); v0=$(field "$j0" values_sent)
  v=ok
  [ "$(verdict "$rc1" "$j1")" = ok ] && [ "$(verdict "$rc0" "$j0")" = ok ] || v=FAILED
  line "ingest_snapshot$suf" value engine_ingest "--shape snapshot --points 200 --seconds 1200 minus --seconds 600${enc:+ --enc $enc}" "${ING// /,}" \
    "$((i1 - i0))" "$(( ${v1:-0} - ${v0:-0} ))" "$v"

  # queries, one phase a run
  local Q=(--points 1 --seconds 172800 "${e[@]}") il rcl jl ir rcr jr id rcd jd
  { read -r il rcl; read -r jl; } < <(run "latest$suf" sr_engine_latest engine_query "${Q[@]}" --lookups 2000 --ranges 0 --downsamples 0 --dir "$T")
  line "latest$suf" lookup engine_query "${Q[*]} --lookups 2000 --ranges 0 --downsamples 0" sr_engine_latest \
    "$il" "$(field "$jl" latest_lookups)" "$(verdict "$rcl" "$jl")"

  { read -r ir rcr; read -r jr; } < <(run "range$suf" sr_engine_range engine_query "${Q[@]}" --lookups 0 --ranges 4 --downsamples 0 --dir "$T")
  line "raw_point$suf" sample engine_query "${Q[*]} --lookups 0 --ranges 4 --downsamples 0" sr_engine_range \
    "$ir" "$(field "$jr" range_samples)" "$(verdict "$rcr" "$jr")"

  { read -r id rcd; read -r jd; } < <(run "downsample$suf" sr_engine_downsample engine_query "${Q[@]}" --lookups 0 --ranges 0 --downsamples 20 --dir "$T")
  line "downsample_1d$suf" call engine_query "${Q[*]} --lookups 0 --ranges 0 --downsamples 20" sr_engine_downsample \
    "$id" "$(field "$jd" downsamples)" "$(verdict "$rcd" "$jd")"
}

# sealed_ratios SEALED_LINES PLAIN_LINES: one sealed_ratio line per engine figure
sealed_ratios() {
  "$PY" - "$1" "$2" <<'EOF'
import json, sys
def lines(text, suffix):
    out = {}
    for l in text.splitlines():
        d = json.loads(l) if l.startswith("{") else {}
        if d.get("bench") == "callgrind" and d.get("what", "").endswith(suffix):
            out[d["what"][:len(d["what"]) - len(suffix)]] = d
    return out
sealed, plain = lines(sys.argv[1], ""), lines(sys.argv[2], "_plain_index")
for what in ("ingest_point", "ingest_snapshot", "latest", "raw_point", "downsample_1d"):
    s, p = sealed.get(what, {}), plain.get(what, {})
    a, b = s.get("instr_per_unit"), p.get("instr_per_unit")
    ok = s.get("verify") == "ok" and p.get("verify") == "ok" and bool(a) and bool(b)
    r = round(a / b, 4) if ok else None
    print(json.dumps({"bench": "sealed_ratio", "source": "callgrind", "what": what,
                      "figure": "instructions per " + str(s.get("unit", p.get("unit", "?"))),
                      "plain": b, "sealed": a, "sealed_over_plain": r,
                      "cost_pct": round((r - 1) * 100, 1) if r else None, "goal_pct": 10,
                      "met": (r - 1) * 100 <= 10 if r else None,
                      "verify": "ok" if ok else "FAILED"}, separators=(",", ":")))
EOF
}

ING="writer_main sr_engine_submit"
SEALED=$(engine_figures "" "")
echo "$SEALED"
PLAIN=$(engine_figures 2 _plain_index)
echo "$PLAIN"
sealed_ratios "$SEALED" "$PLAIN"

{ read -r iy rcy; read -r jy; } < <(run downsample_year ds_year downsample_year --days 365 --reps 1 --old 0)
line downsample_1y_1h call downsample_year "--days 365 --reps 1 --old 0" ds_year \
  "$iy" "$(field "$jy" reps)" "$(verdict "$rcy" "$jy")"

# ---- GW-IF parse ------------------------------------------------------------
{ read -r ig rcg; read -r jg; } < <(run gw_parse sr_gw_fast gw_parse --messages 200 --batch 100 --reps 1)
line gw_parse_msg "message (100 values)" gw_parse "--messages 200 --batch 100 --reps 1" sr_gw_fast \
  "$ig" "$(field "$jg" messages)" "$(verdict "$rcg" "$jg")"
{ read -r is rcs; read -r js; } < <(run gw_parse_snapshot sr_gw_fast gw_parse --messages 200 --batch 100 --points 100 --reps 1)
line gw_parse_snapshot value gw_parse "--messages 200 --batch 100 --points 100 --reps 1" sr_gw_fast \
  "$is" "$(( $(field "$js" messages) * $(field "$js" batch) ))" "$(verdict "$rcs" "$js")"
