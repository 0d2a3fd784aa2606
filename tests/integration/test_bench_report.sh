#!/usr/bin/env bash
# tests/integration/test_bench_report.sh -- bench/report.py and bench/compare.py
# on a fixed, hand-made results file (tests/data/bench/sample.jsonl, every
# line kind; the message shapes of issue #13 as bench/shape_ingest.sh printed
# them, the mixed shape left out; engine_ingest lines from before the shapes,
# read as the series shape, and one of the snapshot shape): the report regenerated from it is
# byte-identical to the checked tables
# (tests/data/bench/sample-performance.md), its figures are the file's,
# it is deterministic, it says so when gnuplot is missing, unknown kinds and
# bad lines are listed, with gnuplot every goal has a chart under its
# section's tables; compare names a changed figure with old -> new and
# the change in %, and flags verification failures. Needs no gnuplot (charts
# are drawn only if it is installed, into a temporary directory).
# usage: test_bench_report.sh
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
S=$ROOT/tests/data/bench/sample.jsonl
E=$ROOT/tests/data/bench/sample-performance.md
. "$ROOT/tests/integration/lib.sh"
sr_setup benchreport
report() { (cd "$ROOT" && "$PY" bench/report.py "$@"); }

# ---- the report ------------------------------------------------------------
report tests/data/bench/sample.jsonl --no-charts > "$T/r1.md"; rc=$?
check "report.py succeeds on the sample" "[ $rc -eq 0 ]"
if diff -u "$E" "$T/r1.md" > "$T/diff"; then ok "the report equals tests/data/bench/sample-performance.md"
else bad "the report differs from tests/data/bench/sample-performance.md:"; head -n 60 "$T/diff"; fi
report tests/data/bench/sample.jsonl --no-charts --out "$T/r2.md"
check "--out writes the same text as stdout" "cmp -s $T/r1.md $T/r2.md"
report tests/data/bench/sample.jsonl --no-charts > "$T/r3.md"
check "the report is deterministic" "cmp -s $T/r1.md $T/r3.md"
check "the report says charts were not rendered" "grep -q 'charts: not rendered (--no-charts)' $T/r1.md"

# every headline figure of every tabled line is in the report as the file has it
"$PY" - "$ROOT" "$S" "$T/r1.md" > "$T/figs" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1] + "/bench")
import benchlines as bl
text = open(sys.argv[3], encoding="utf-8").read()
lines, bad = bl.load(sys.argv[2])
missing, n = [], 0
for _, o in lines:
    if o["bench"] in ("machine", "ap_query_ratio", "net_ingest_ratio", "gw_ingest_ratio"):
        continue
    for k, v in bl.figures(o):
        if v is None:
            continue
        n += 1
        if format(v, ",") not in text:
            missing.append("%s %s=%s" % (bl.ident(o), k, v))
print(n, len(missing))
for m in missing:
    print("  missing:", m)
EOF
read -r nfig nmiss < "$T/figs"
check "every headline figure ($nfig) appears in the report as written in the file" "[ '${nmiss:-1}' = 0 ]" || cat "$T/figs"
check "the FAILED line is named with its reason" "grep -q 'FAILED\*\*: ap_query system=victoriametrics query=series_raw — 3599 values' $T/r1.md"
check "goals are marked met and not met" "grep -q '2,094,267 (goal ≥ 2,000,000: met)' $T/r1.md && grep -q '1,254,577 (goal ≥ 10,000,000: \*\*not met\*\*)' $T/r1.md && grep -q '^| snapshot | 10,000 × 1,800 | 0 | 1 | 1 | 1 | 231,040 (goal ≥ 10,000,000: \*\*not met\*\*)' $T/r1.md"
check "ratios come from the file's ratio lines" "grep -q '0.703 (goal ≥ 1.5: \*\*not met\*\*)' $T/r1.md && grep -q 'from the file.s .net_ingest_ratio. lines' $T/r1.md"
check "the fsync latency is in the machine section" "grep -q 'p50 0.494 ms, p99 5.651 ms' $T/r1.md"
check "unknown kinds are listed generically" "grep -q '^### ap_query_load' $T/r1.md"
# the message shapes of issue #13: one table per shape, the systems side by side
check "each shape has its table, the systems side by side" \
  "grep -q '^### snapshot$' $T/r1.md && grep -q '^|  | suiro_mqtt | suiro_http | mosquitto | influxdb | victoriametrics |$' $T/r1.md"
check "the paced run's PUBACK p99 is in its shape's table" \
  "grep -q '^| PUBACK p50 / p99 ms, at half the rate | 1,217.571 / 1,419.589 | — | 8.725 / 43.238 | — | — |$' $T/r1.md"
check "suiro's log and index bytes per point are apart" "grep -q '^| log / index B/point | 4.788 / 3.953 | 6.341 / 3.744 |' $T/r1.md"
check "the generator's CPU is shown" "grep -q '^| generator CPU, % of a core (s) | 2 (0.06) | 3 (0.31) | 15 (0.06) |' $T/r1.md"
# the sample has the series and snapshot ratio lines, no mixed one: a goal
# met on the series alone is met by 1 of 3 shapes, not met
check "no goal counts as met on one shape alone (a missing shape counts)" \
  "grep -q '| 0.719 (shape=series); 1.173 (shape=snapshot); — (shape=mixed) | met by 1 of 3 |$' $T/r1.md"

# without gnuplot on PATH the report says so and still has its tables
mkdir -p "$T/bin"
( cd "$ROOT" && PATH="$T/bin" "$PY" bench/report.py "$S" --out "$T/nogp/performance.md" )
check "without gnuplot the report says so" "grep -q 'gnuplot is not installed (Debian package gnuplot-nox)' $T/nogp/performance.md"
check "without gnuplot the tables are there" "grep -q '^## AP-IF queries vs peers' $T/nogp/performance.md && ! grep -q '^## Charts' $T/nogp/performance.md && ! grep -q 'goals-' $T/nogp/performance.md"

# unknown kinds, bad lines, a file without run/machine lines
{ grep -v '"bench":"run"' "$S" | grep -v '"bench":"machine"'
  echo '{"bench":"future_kind","widgets":12,"mode":"fast","verify":"ok"}'
  echo 'not json'
  echo '{"no_bench":1}'; } > "$T/20991231T235959Z.jsonl"
report "$T/20991231T235959Z.jsonl" --no-charts > "$T/r4.md"; rc=$?
check "report.py copes with unknown kinds and bad lines" "[ $rc -eq 0 ]"
check "an unknown kind gets its own generic table" "grep -q '^### future_kind' $T/r4.md && grep -q '^| mode | verify | widgets |$' $T/r4.md && grep -q '^| fast | ok | 12 |$' $T/r4.md"
nj=$(( $(grep -v '"bench":"run"' "$S" | grep -cv '"bench":"machine"') + 2 ))
check "bad lines are reported by number" "grep -q 'line $nj skipped: not JSON' $T/r4.md && grep -q 'line $((nj + 1)) skipped: no \"bench\" key' $T/r4.md"
check "without a run line the date is the file's name and the commit is unrecorded" \
  "grep -q 'date: 20991231T235959Z (the file.s name)' $T/r4.md && grep -q 'commit: not recorded' $T/r4.md"

if command -v gnuplot >/dev/null 2>&1; then
  report tests/data/bench/sample.jsonl --out "$T/g/performance.md" --charts "$T/g/perf" 2>"$T/gp.err"
  check "with gnuplot both charts are PNG files" \
    "[ \"\$(head -c 4 $T/g/perf/ingest.png | tail -c 3)\" = PNG ] && [ \"\$(head -c 4 $T/g/perf/latency.png | tail -c 3)\" = PNG ]"
  check "with gnuplot the report links them" "grep -q '](perf/ingest.png)' $T/g/performance.md && grep -q '](perf/latency.png)' $T/g/performance.md"
  check "with gnuplot the message shapes have their chart" \
    "[ \"\$(head -c 4 $T/g/perf/shapes.png | tail -c 3)\" = PNG ] && grep -q '](perf/shapes.png)' $T/g/performance.md"
  # a chart per goal (GOALS), one PNG per section, under the section's tables
  insec() { awk -v h="$1" -v f="$2" '/^## /{s=($0==h)} s && index($0, "](perf/" f ")"){n++} END{exit n!=1}' "$T/g/performance.md"; }
  check "with gnuplot the goals have their charts, each under its section's tables" \
    "( for f in shapes ap query restart ingest; do [ \"\$(head -c 4 $T/g/perf/goals-\$f.png | tail -c 3)\" = PNG ] || exit 1; done ) \
     && insec '## Message shapes vs peers' goals-shapes.png && insec '## AP-IF queries vs peers' goals-ap.png \
     && insec '## Engine queries' goals-query.png && insec '## Restart' goals-restart.png \
     && insec '## Engine ingest' goals-ingest.png"
  mkdir -p "$T/g2/perf" && : > "$T/g2/perf/goals-stale.png"
  report tests/data/bench/sample.jsonl --out "$T/g2/performance.md" --charts "$T/g2/perf" 2>/dev/null
  check "a goal chart the file has no figure for does not linger" "[ ! -e $T/g2/perf/goals-stale.png ]"
else
  echo "skip: gnuplot is not installed (charts not tested)"
fi

# ---- compare ---------------------------------------------------------------
sed 's/"threads":2,"window":8192,"enc":1,"zstd":1,"sync":"always","events":180000,"values_sent":18085094,"values_unique":18000000,"late_moved":84692,"dups":85094,"gen_s":1.634,"ingest_s":12.685,"points_per_s":1425740/"threads":2,"window":8192,"enc":1,"zstd":1,"sync":"always","events":180000,"values_sent":18085094,"values_unique":18000000,"late_moved":84692,"dups":85094,"gen_s":1.634,"ingest_s":12.685,"points_per_s":1140592/' \
  "$S" > "$T/new.jsonl"
check "the copy has exactly one figure changed" "[ \$(diff $S $T/new.jsonl | grep -c '^>') = 1 ]"
"$PY" "$ROOT/bench/compare.py" "$S" "$T/new.jsonl" > "$T/cmp"; rc=$?
check "compare exits 1: NEW has a line that failed its verification" "[ $rc -eq 1 ]"
check "compare names the changed line" "grep -q '^engine_ingest shape=series points=10000 seconds=1800 batch=100 late_bp=100 threads=2 window=8192 enc=1 zstd=1 sync=always$' $T/cmp"
check "compare prints old -> new and the change in %" "grep -Eq '^  points_per_s +1,425,740 -> 1,140,592 +-20.0 %  worse$' $T/cmp"
check "compare counts one worse figure and nothing better" "grep -q ', 0 better, 1 worse,' $T/cmp"
check "compare flags the failed verification" "grep -q '^VERIFY FAILED in NEW: ap_query system=victoriametrics query=series_raw$' $T/cmp"
"$PY" "$ROOT/bench/compare.py" "$S" "$T/new.jsonl" --brief > "$T/brief"
check "--brief shows only the change and the flags" \
  "[ \$(grep -c '^  ' $T/brief) = 1 ] && grep -q 'points_per_s' $T/brief && grep -q 'VERIFY FAILED -> FAILED' $T/brief"
grep -v '"what":"gw_parse_msg"' "$S" > "$T/fewer.jsonl"
"$PY" "$ROOT/bench/compare.py" "$S" "$T/fewer.jsonl" > "$T/cmp2"
check "compare lists lines only in one file" "grep -q '^only in OLD: callgrind what=gw_parse_msg$' $T/cmp2"

# the wrapper: the two newest files of a results directory
mkdir -p "$T/repo/bench/results"
cp "$ROOT/bench/compare" "$ROOT/bench/compare.py" "$ROOT/bench/benchlines.py" "$T/repo/bench/"
cp "$S" "$T/repo/bench/results/20990101T000000Z.jsonl"
cp "$S" "$T/repo/bench/results/20990102T000000Z.jsonl"
cp "$T/new.jsonl" "$T/repo/bench/results/20990103T000000Z.jsonl"
bash "$T/repo/bench/compare" > "$T/cmp3"
check "bench/compare with no arguments compares the two newest files" \
  "head -n 1 $T/cmp3 | grep -q '20990102T000000Z.jsonl -> .*20990103T000000Z.jsonl' && grep -q '1,425,740 -> 1,140,592' $T/cmp3"

sr_finish test_bench_report
