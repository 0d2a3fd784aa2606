#!/usr/bin/env bash
# bench/overload.sh BUILD -- the overload suite (tests/integration/test_overload.py)
# with longer phases, for `make bench`: one operator attacks the real server in
# phases while another operator's latest-value and PUBACK latencies and the
# server's RSS are measured. Prints one JSON line per phase on stdout
# ({"bench":"overload","phase":..,"latest_p99_ms":..,"latest_p99_x_quiet":..,
#   "puback_p99_ms":..,"puback_p99_x_quiet":..,"rss_max_mb":..,"verify":..});
# the ratios are against the quiet phase's p99, floored at 1 ms.
# SR_SOAK (default 4) scales the phases (1.5 s each per unit).
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
SR_SOAK=${SR_SOAK:-4} SR_OVERLOAD_OUT="$tmp" /usr/bin/python3 "$ROOT/tests/integration/test_overload.py" \
  "$BUILD/suiro" >&2 || true
cat "$tmp"
[ -s "$tmp" ]
