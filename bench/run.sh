#!/usr/bin/env bash
# `make bench`: run every bench/ program and append their JSON lines to
# bench/results/<UTC date-time>.jsonl (one file per run). Peers: Mosquitto in
# bench/gw_ingest.sh, InfluxDB 1.6 and VictoriaMetrics in bench/ap_query.sh
# (Debian packages, installed by scripts/deps.sh --bench); Redis joins later.
set -euo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/.."
mkdir -p bench/results
out="bench/results/$(date -u +%Y%m%dT%H%M%SZ).jsonl"
host=$(printf '{"bench":"machine","cores":%s,"mem_kb":%s,"kernel":"%s","date":"%s"}' \
  "$(nproc)" "$(awk '/MemTotal/{print $2}' /proc/meminfo)" "$(uname -r)" "$(date -u +%FT%TZ)")
echo "$host" | tee "$out"
echo "bench: log_append (the goal configuration, then the matrix)" >&2
"$BUILD/bench/log_append" --records 3000000 --zstd 0 --enc 1 | tee -a "$out"
"$BUILD/bench/log_append" --records 3000000 --zstd 1 --enc 1 | tee -a "$out"
"$BUILD/bench/log_append" --records 3000000 --zstd 1 --enc 1 --threads 2 | tee -a "$out"
"$BUILD/bench/log_append" --matrix | tee -a "$out"
echo "bench: series chunk codec" >&2
"$BUILD/bench/series_codec" | tee -a "$out"
echo "bench: engine ingest (reference data set: 10k points, 1 s, 1 % late; 1 and 2 threads; enc and zstd on)" >&2
"$BUILD/bench/engine_ingest" --threads 1 | tee -a "$out"
"$BUILD/bench/engine_ingest" --threads 2 | tee -a "$out"
"$BUILD/bench/engine_ingest" --threads 1 --enc 0 --zstd 0 | tee -a "$out"
echo "bench: engine queries, rebuild and restart" >&2
"$BUILD/bench/engine_query" | tee -a "$out"
"$BUILD/bench/engine_restart" | tee -a "$out"
echo "bench: GW-IF ingest over MQTT, suiro serve vs Mosquitto (bench/gw_ingest.sh)" >&2
bash bench/gw_ingest.sh "$BUILD" | tee -a "$out"
echo "bench: AP-IF queries over HTTP, suiro serve vs InfluxDB 1.6 and VictoriaMetrics (bench/ap_query.sh)" >&2
bash bench/ap_query.sh "$BUILD" | tee -a "$out"
if grep -q '"verify":"FAILED"' "$out"; then
  echo "bench: a benchmark failed its own verification; see $out" >&2
  exit 1
fi
echo "bench: results in $out" >&2
