#!/usr/bin/env bash
# `make bench`: run every bench/ program and the same workloads against the
# peers, append their JSON lines to bench/results/<UTC date-time>.jsonl (one
# file per run), regenerate docs/performance.md from it, and show the change
# against the previous run (bench/compare).
#
# Peers (Debian packages, installed by scripts/deps.sh --bench, each started on
# loopback in a temporary directory and stopped by its PID by the script that
# uses it): Mosquitto (bench/gw_ingest.sh, bench/shape_ingest.sh), InfluxDB 1.6
# and VictoriaMetrics (bench/ap_query.sh, bench/net_ingest.sh,
# bench/shape_ingest.sh), Redis Streams with appendfsync always
# (bench/net_ingest.sh); 3 nats-server JetStream nodes (bench/cluster_ingest.py,
# through tests/integration/srtest.py start_nats_cluster).
#
# Every benchmark verifies what it measured ("verify":"ok"|"FAILED"); a step
# that fails is reported and the run goes on, so the report shows what did
# run; the exit status is non-zero if anything failed.
set -uo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/.."
mkdir -p bench/results
out="bench/results/$(date -u +%Y%m%dT%H%M%SZ).jsonl"
failed=0
step() { # step "what" command...: run it, its JSON lines into the results file
  echo "bench: $1" >&2
  shift
  if ! "$@" | tee -a "$out"; then
    echo "bench: FAILED: $*" >&2
    failed=1
  fi
}
host=$(printf '{"bench":"machine","cores":%s,"mem_kb":%s,"kernel":"%s","date":"%s"}' \
  "$(nproc)" "$(awk '/MemTotal/{print $2}' /proc/meminfo)" "$(uname -r)" "$(date -u +%FT%TZ)")
echo "$host" | tee "$out"
step "the run (commit, build)" bash bench/run_info.sh "$BUILD"
step "disk write+fdatasync latency (200 x 4 KiB)" "$BUILD/bench/fsync_probe" --dir bench/results
step "log_append, the goal configuration" "$BUILD/bench/log_append" --records 3000000 --zstd 0 --enc 1
step "log_append, zstd" "$BUILD/bench/log_append" --records 3000000 --zstd 1 --enc 1
step "log_append, zstd, 2 appenders" "$BUILD/bench/log_append" --records 3000000 --zstd 1 --enc 1 --threads 2
step "log_append, per-record keys (format version 3 sections): 1 key through a resolver" "$BUILD/bench/log_append" --records 3000000 --zstd 1 --keys 1
step "log_append, per-record keys: runs of 16 alternating among 8 keys" "$BUILD/bench/log_append" --records 3000000 --zstd 1 --keys 8 --run 16
step "log_append, the matrix" "$BUILD/bench/log_append" --matrix
step "series chunk codec" "$BUILD/bench/series_codec"
step "blob store write and read: plain, store key (v1), data key (v2); 4 x 64 MiB" "$BUILD/bench/blob_io" --mib 64 --blobs 4
step "engine file upload and download: one key for all (v1 blobs) vs the keyring (v2, per-operator data keys); 200 x 1 MiB" "$BUILD/bench/engine_files" --mib 1 --files 200
step "engine ingest (reference set: 10k points, 1 s, 1 % late; enc+zstd)" "$BUILD/bench/engine_ingest" --threads 1
step "engine ingest, the snapshot shape (events of 100 points x 1 value, one timestamp)" "$BUILD/bench/engine_ingest" --threads 1 --shape snapshot
step "engine ingest, the mixed shape (snapshots + a 1 % backfill of old series)" "$BUILD/bench/engine_ingest" --threads 1 --shape mixed
step "engine ingest, 2 submitting threads" "$BUILD/bench/engine_ingest" --threads 2
step "engine ingest, one key for all (the format before per-operator keys, a plain index: their cost, docs/keys.md)" "$BUILD/bench/engine_ingest" --threads 1 --enc 2
step "engine ingest, no encryption, no zstd" "$BUILD/bench/engine_ingest" --threads 1 --enc 0 --zstd 0
step "engine ingest, no encryption (zstd on: the encryption axis)" "$BUILD/bench/engine_ingest" --threads 1 --enc 0
step "engine ingest with a retention sweep cutting a backlog (issue #16; medians of 3 pairs)" "$BUILD/bench/retention_ingest"
step "engine queries (per-operator keys: the index sealed, layout 8)" "$BUILD/bench/engine_query"
step "engine queries, one key for all (the index plain: the sealed index's cost, docs/keys.md)" "$BUILD/bench/engine_query" --enc 2
step "the sealed index's cost, side by side (issue #16): engine ingest (series, snapshot), latest, raw range, downsampling; plain (--enc 2) and sealed (--enc 1) in 5 interleaved pairs, medians" /usr/bin/python3 bench/sealed_index.py "$BUILD"
step "a year of 1 s values to 1 h: chunk summaries vs decoding, then through the engine" "$BUILD/bench/downsample_year" --engine 1
step "engine replay, rebuild (serial and pipelined) and restart" "$BUILD/bench/engine_restart"
step "engine replay, rebuild (serial and pipelined) and restart, no encryption" "$BUILD/bench/engine_restart" --enc 0
step "the state at a past time (issue #18, docs/state.md): answers at random T over 2,000 points x 300 s (600 k values), a state snapshot every 100 k values; two answers checked against the full replay" "$BUILD/bench/state_at" --points 2000 --seconds 300 --answers 20 --snap-values 100000 --check 2
if [ "${SR_BENCH_BIG:-0}" = 1 ]; then # ~12 minutes and ~5 GB under /work/bench-data
  step "the state at a past time on a log of 100 M values (issue #18's goal: any T <= 1 s): 10,000 points x 10,000 s, groups of <= 64 events, 40 answers at random T" bash bench/state_at.sh "$BUILD"
fi
step "online backup vs cp -a, ingest during backups, restore to serving (net_ingest's data set, through the engine)" "$BUILD/bench/engine_backup"
step "GW-IF ingest over MQTT, suiro serve vs Mosquitto" bash bench/gw_ingest.sh "$BUILD"
step "network ingest (MQTT, gateway snapshots) with signed checkpoints at the default period vs none, ABAB rounds in one run (issue #18: < 3 %)" /usr/bin/python3 bench/ckpt_ingest.py "$BUILD"
step "the GW-IF values fast path alone" "$BUILD/bench/gw_parse"
if [ -f bench/net_ingest.sh ]; then
  step "durable ingest over the network, disk bytes, restart: suiro (encrypted and plain) vs InfluxDB, VictoriaMetrics, Redis" \
    bash bench/net_ingest.sh "$BUILD"
fi
step "message shapes (issue #13): series, snapshot, mixed; suiro over MQTT and HTTP vs Mosquitto, InfluxDB, VictoriaMetrics" \
  bash bench/shape_ingest.sh "$BUILD"
step "the cluster mode (issue #19): durable MQTT ingest with 1, 2, 3 suiro nodes over 3 nats-server (R3) vs a single node, the same run; PUBACK p50/p99; takeover after kill -9; catch-up of a restarted node (2 cores: a floor)" \
  /usr/bin/python3 bench/cluster_ingest.py "$BUILD"
step "restart at 1x, 10x, 100x the data (100 k to 10 M values), series and snapshot: suiro vs VictoriaMetrics" \
  bash bench/restart_sizes.sh "$BUILD"
step "AP-IF queries over HTTP, suiro serve vs InfluxDB 1.6 and VictoriaMetrics" bash bench/ap_query.sh "$BUILD"
step "the audit of AP-IF reads (issue #18): latest values with [audit] reads on vs off" bash bench/ap_audit_cost.sh "$BUILD/suiro"
step "CSV export of stored values (R-PO-1): suiro format=csv vs VictoriaMetrics /api/v1/export/csv" bash bench/csv_export.sh "$BUILD"
step "overload: one operator attacks, another is measured" bash bench/overload.sh "$BUILD"
step "instruction counts of the hot paths (callgrind)" bash bench/callgrind.sh "$BUILD"
if grep -q '"verify":"FAILED"' "$out"; then
  echo "bench: a benchmark failed its own verification; see $out" >&2
  failed=1
fi
echo "bench: docs/performance.md from $out" >&2
/usr/bin/python3 bench/report.py "$out" --out docs/performance.md --charts docs/perf || failed=1
echo "bench: the change against the previous run:" >&2
bash bench/compare --brief >&2 || true
echo "bench: results in $out" >&2
exit "$failed"
