#!/usr/bin/env bash
# Install the system packages suiro needs to build and test. Idempotent: only
# what is missing is installed. Debian/Ubuntu only (apt-get); elsewhere it
# prints the package list and stops.
#
#   scripts/deps.sh           build + test dependencies
#   scripts/deps.sh --bench   also the peers used by `make bench`
# (nats-server, libnats-dev: the cluster mode over NATS JetStream, docs/cluster.md,
# and its tests; dpkg-dev: `make deb`'s dpkg-shlibdeps; groff-base: the manual pages'
# check; systemd: systemd-analyze verify on the unit -- installing the
# package starts nothing where systemd is not running, as in a container)
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config git
  liblmdb-dev lmdb-utils libuv1-dev libprotobuf-c-dev protobuf-c-compiler
  libzstd-dev libssl-dev openssl libcriterion-dev libjansson-dev
  libinih-dev libmosquitto-dev mosquitto-clients python3-paho-mqtt libh2o-dev curl
  libcurl4-openssl-dev python3-cryptography python3-yaml
  oathtool prometheus python3-aiosmtpd
  nats-server libnats-dev
  dpkg-dev groff-base systemd
  clang
  python3
  chromium
)
BENCH_PKGS=()
if [ "${1:-}" = "--bench" ]; then
  # peers (on a machine with systemd their packages also start services on the
  # default ports, which the benchmarks do not use): mosquitto (bench/gw_ingest.sh), influxdb and victoria-metrics
  # (bench/ap_query.sh, bench/net_ingest.sh), redis-server (bench/net_ingest.sh)
  BENCH_PKGS=(redis-server mosquitto influxdb victoria-metrics)
  # bench/callgrind.sh (instruction counts) and bench/report.py (charts)
  BENCH_PKGS+=(valgrind gnuplot-nox)
fi
want=("${PKGS[@]}" "${BENCH_PKGS[@]}")

# The sanitizer and libFuzzer runtime must match the clang that `clang` runs:
# Debian 12 has clang 14, Ubuntu 24.04 18, Debian 13 19. Its major version
# comes from the running clang, else from what the `clang` package depends on
# (installed, or as apt would install it); the runtime is libclang-rt-N-dev,
# or libclang-common-N-dev on releases that ship it there (clang <= 13).
clang_major() {
  local v=
  if command -v clang >/dev/null 2>&1; then
    v=$(clang --version 2>/dev/null | sed -n 's/.*clang version \([0-9][0-9]*\).*/\1/p' | head -n1)
  fi
  if [ -z "$v" ] && command -v dpkg-query >/dev/null 2>&1; then
    v=$(dpkg-query -W -f='${Depends}' clang 2>/dev/null | sed -n 's/.*clang-\([0-9][0-9]*\).*/\1/p' | head -n1)
  fi
  if [ -z "$v" ] && command -v apt-cache >/dev/null 2>&1; then
    v=$(apt-cache depends clang 2>/dev/null | sed -n 's/^ *Depends: clang-\([0-9][0-9]*\)$/\1/p' | head -n1)
  fi
  printf '%s' "$v"
}
rt_pkg() {
  local n=$1
  if [ -z "$n" ]; then return 0; fi
  if [ "$n" -le 13 ]; then printf 'libclang-common-%s-dev' "$n"; else printf 'libclang-rt-%s-dev' "$n"; fi
}
rt=$(rt_pkg "$(clang_major)")
# (empty when neither clang nor the package lists are there yet: asked again
# once clang is installed, below)
if [ -n "$rt" ]; then want+=("$rt"); fi

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  echo "deps.sh: this is not a Debian/Ubuntu system (no apt-get)." >&2
  echo "deps.sh: install these packages (Debian names) by hand, then run make again:" >&2
  printf '  %s\n' "${want[@]}" >&2
  exit 1
fi

missing=()
for p in "${want[@]}"; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  case "$st" in *"install ok installed"*) ;; *) missing+=("$p") ;; esac
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps.sh: all ${#want[@]} packages present"
  exit 0
fi

echo "deps.sh: installing ${missing[*]}"
SUDO=
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "deps.sh: not root and no sudo; install as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
if [ -z "$rt" ]; then
  rt=$(rt_pkg "$(clang_major)")
  if [ -n "$rt" ]; then
    $SUDO apt-get install -y -qq --no-install-recommends "$rt"
  else
    echo "deps.sh: cannot tell which clang runtime matches clang; for make build-asan" >&2
    echo "deps.sh: install libclang-rt-N-dev for clang N (clang --version) by hand" >&2
  fi
fi
echo "deps.sh: done"
