#!/usr/bin/env bash
# `make run`: the main job as far as it exists. Until the network server lands
# (GW-IF issue) that is the engine on a local data directory: an encrypted
# event log (key outside the data directory), the demo operator from the
# set-up sheet, a verification, and what to try next.
set -euo pipefail
BUILD=${1:-build}
BIN="$BUILD/suiro"
DATA=./suiro-data
KEYS=./suiro-keys
mkdir -p "$KEYS"
chmod 700 "$KEYS"
if [ ! -s "$KEYS/log.key" ]; then
  (umask 077; openssl rand -hex 32 > "$KEYS/log.key")
  echo "created a log key: $KEYS/log.key (keep it outside the data directory)"
fi
K=(--key-file "$KEYS/log.key")
"$BIN" init --demo "$DATA" "${K[@]}"
"$BIN" verify "$DATA" "${K[@]}"
echo
echo "the demo operator's data points:"
"$BIN" sheet export "$DATA" --operator demo "${K[@]}" | sed -n '/^\[datapoints\]/,/^$/p'
cat <<MSG
What to try next:
  $BIN replay $DATA ${K[*]} --kind master_put          # the events, decoded, as JSON lines
  $BIN sheet export $DATA --operator demo ${K[*]} > my-sheet.csv
  (edit my-sheet.csv)  $BIN sheet import my-sheet.csv $DATA ${K[*]}
  $BIN rebuild $DATA ${K[*]} && $BIN verify $DATA ${K[*]}
  make test     # every suite, also under ASan/UBSan and the fuzzers
  make bench    # bench/ programs, results in bench/results/
The network server (GW-IF / AP-IF) and the gateway simulator come with the next issues.
MSG
