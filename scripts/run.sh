#!/usr/bin/env bash
# `make run`: the main job as far as it exists. Today that is the event log:
# create an encrypted log in ./suiro-data/log (key in ./suiro-keys, outside the
# data directory), append a few demo events, verify the chain, dump them back.
set -euo pipefail
BUILD=${1:-build}
BIN="$BUILD/suiro"
DATA=./suiro-data
KEYS=./suiro-keys
mkdir -p "$DATA" "$KEYS"
chmod 700 "$KEYS"
if [ ! -s "$KEYS/log.key" ]; then
  umask 077
  openssl rand -hex 32 > "$KEYS/log.key"
  echo "created a log key: $KEYS/log.key (keep it outside the data directory)"
fi
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
printf '%s\n' \
  "{\"at\":\"$now\",\"kind\":\"gateway.session\",\"gateway\":\"GW001\",\"state\":\"online\"}" \
  "{\"at\":\"$now\",\"kind\":\"measurement\",\"dataId\":\"P001\",\"value\":12.34}" \
  "{\"at\":\"$now\",\"kind\":\"measurement\",\"dataId\":\"P002\",\"value\":0.56}" |
  "$BIN" log append "$DATA/log" --key-file "$KEYS/log.key"
"$BIN" log verify "$DATA/log" --key-file "$KEYS/log.key"
echo
echo "last records:"
"$BIN" log dump "$DATA/log" --key-file "$KEYS/log.key" | tail -n 3
cat <<MSG

What to try next:
  $BIN log verify $DATA/log --key-file $KEYS/log.key --json
  $BIN log dump $DATA/log --key-file $KEYS/log.key --from 1 --count 5
  echo 'my event' | $BIN log append $DATA/log --key-file $KEYS/log.key
  make test     # the whole suite, also under ASan/UBSan
  make bench    # bench/log_append against the plain write()+fdatasync() floor
The network server (GW-IF / AP-IF) is not built yet; see docs/architecture.md.
MSG
