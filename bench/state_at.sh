#!/usr/bin/env bash
# bench/state_at.sh BUILD -- the goal of issue #18 (R-RE-2): "any T answered
# in <= 1 s on a log of 100 M values, in a benchmark". bench/state_at (its
# header: the engine loaded with the reference data set, then answers at
# random T, each the state as of T: the snapshot before T restored, the events
# after it replayed, every point's latest value and the registry read) at the
# goal's size: 10,000 points x 10,000 s = 100 M values, gateway snapshots of
# 1,000 values, written in small groups (--group-max 64 events: a state
# snapshot falls between groups, so an answer restores one and replays up to
# one interval -- the case that costs; with the writer's own large groups every
# group ends in a snapshot and no answer replays anything), snapshots at the
# defaults ([state] snapshot_events 20,000 / snapshot_values 500,000).
#
#   bash bench/state_at.sh build        (bench/run.sh calls it with SR_BENCH_BIG=1)
#
# The data directory is under ST_DIR [/work/bench-data] (not /tmp: several
# GB; the directory is removed at the end). Before loading, the free space
# there is checked: the run needs about ST_NEED_GB [12] and takes at most 40 %
# of what is free; with less it stops with a message naming both figures
# (the size can be lowered: ST_POINTS x ST_SECONDS).
# Environment: ST_POINTS [10000], ST_SECONDS [10000], ST_ANSWERS [40],
# ST_GROUP_MAX [64], ST_CHECK [0] (answers also compared with the full replay
# from the log's start: minutes each at 100 M), ST_SNAP_EVENTS [20000] and
# ST_SNAP_VALUES [500000] (the [state] snapshot intervals: an answer replays
# at most one), ST_NEED_GB [12], ST_DIR.
# Output: bench/state_at's one JSON line ({"bench":"state_at",...,"values":..,
# "p50_ms":..,"p99_ms":..,"max_ms":..,"verify":..}); report.py's goal row
# "state_at" applies to its line of 100,000,000 values. Times are reported,
# never asserted; "verify" is the answers' correctness (bench/state_at.c).
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
BIN=$BUILD/bench/state_at
[ -x "$BIN" ] || { echo "state_at.sh: no $BIN (build with -DSR_BUILD_BENCH=ON)" >&2; exit 1; }
DIR=${ST_DIR:-/work/bench-data}
NEED=${ST_NEED_GB:-12}
mkdir -p "$DIR"
free_gb=$(df -P -BG "$DIR" | awk 'NR == 2 { sub("G", "", $4); print $4 }')
if [ "$((free_gb * 40 / 100))" -lt "$NEED" ]; then
  echo "state_at.sh: $DIR has $free_gb GB free; the run needs about $NEED GB and may take at most 40 % of it" >&2
  exit 1
fi
W=$(mktemp -d "$DIR/stateat-XXXXXX")
trap 'rm -rf "$W"' EXIT
trap 'exit 130' INT TERM
"$BIN" --points "${ST_POINTS:-10000}" --seconds "${ST_SECONDS:-10000}" --shape snapshot --batch 1000 \
  --answers "${ST_ANSWERS:-40}" --group-max "${ST_GROUP_MAX:-64}" --check "${ST_CHECK:-0}" \
  --snap-events "${ST_SNAP_EVENTS:-20000}" --snap-values "${ST_SNAP_VALUES:-500000}" --dir "$W"
