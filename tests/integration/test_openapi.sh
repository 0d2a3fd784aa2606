#!/usr/bin/env bash
# tests/integration/test_openapi.sh SUIRO_BIN -- the server's route table
# (`suiro routes`) and docs/api/openapi.yaml name the same (method, path)
# set, and every $ref of the spec resolves.
set -euo pipefail
BIN=$1
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/integration/lib.sh"
sr_setup openapi
"$BIN" routes > "$T/routes"
[ -s "$T/routes" ] || { echo "FAIL: suiro routes printed nothing"; exit 1; }
/usr/bin/python3 "$ROOT/tests/integration/check_openapi.py" "$ROOT/docs/api/openapi.yaml" "$T/routes"
