#!/usr/bin/env bash
# bench/run_info.sh BUILD -- the "run" line of a results file: when, from which
# commit (and whether the tree had uncommitted changes to tracked files), and
# how the build was configured. bench/report.py puts it at the top of
# docs/performance.md. RUN_NOTE=TEXT adds a "note" (e.g. what a partial run
# left out).
#   {"bench":"run","date":..,"commit":..,"dirty":true|false,"build_type":..,"cc":..[,"note":..]}
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
commit=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || true)
dirty=false
if [ -n "$commit" ] && [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then dirty=true; fi
cache="$BUILD/CMakeCache.txt"
btype=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$cache" 2>/dev/null | head -n 1 || true)
ccpath=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$cache" 2>/dev/null | head -n 1 || true)
cc=$([ -n "$ccpath" ] && "$ccpath" --version 2>/dev/null | head -n 1 || true)
"$PY" - "$(date -u +%FT%TZ)" "$commit" "$dirty" "$btype" "$cc" "${RUN_NOTE:-}" <<'PYEOF'
import json, sys
date, commit, dirty, btype, cc, note = sys.argv[1:7]
r = {"bench": "run", "date": date, "commit": commit or None, "dirty": dirty == "true",
     "build_type": btype or None, "cc": cc or None}
if note:
    r["note"] = note
print(json.dumps(r, separators=(",", ":")))
PYEOF
