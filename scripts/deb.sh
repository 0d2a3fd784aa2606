#!/usr/bin/env bash
# scripts/deb.sh [BUILD [OUTDIR]] -- `make deb`: the Debian package of the
# build in BUILD (default build), written to OUTDIR/suiro_VERSION_ARCH.deb
# (default BUILD); prints its path. Nothing is compiled here: it installs the
# build (`cmake --install --prefix /usr --strip`, the same rules as `make
# install`) into a staging root and packs that with dpkg-deb:
#   - the version is the project's (CMakeLists.txt project(VERSION));
#   - Depends is computed by dpkg-shlibdeps from the binary's libraries, plus
#     adduser (the postinst makes the user);
#   - /etc/suiro/suiro.ini is a conffile (an edited one survives upgrades);
#   - the unit goes to /lib/systemd/system (Debian 12's place);
#   - man pages gzipped (-n: reproducible); files owned by root;
#   - the maintainer scripts are scripts/packaging/deb/{postinst,prerm,postrm}.
# docs/install.md says what installing it does.
set -euo pipefail
BUILD=${1:-build}
OUT=${2:-$BUILD}
SRC=$(cd "$(dirname "$0")/.." && pwd)
for t in dpkg-deb dpkg-shlibdeps cmake; do
  command -v "$t" >/dev/null || { echo "deb.sh: $t is missing (apt-get install dpkg-dev cmake)" >&2; exit 1; }
done
[ -x "$BUILD/suiro" ] || { echo "deb.sh: no $BUILD/suiro: run make build first" >&2; exit 1; }
VERSION=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$BUILD/CMakeCache.txt")
[ -n "$VERSION" ] || { echo "deb.sh: no project version in $BUILD/CMakeCache.txt" >&2; exit 1; }
ARCH=$(dpkg --print-architecture)
ST=$(mktemp -d "${TMPDIR:-/tmp}/suiro-deb-XXXXXX")
trap 'rm -rf "$ST"' EXIT
ROOT=$ST/root
DESTDIR=$ROOT cmake --install "$BUILD" --prefix /usr --strip >/dev/null
mkdir -p "$ROOT/lib"
mv "$ROOT/usr/lib/systemd" "$ROOT/lib/systemd"
rmdir "$ROOT/usr/lib" 2>/dev/null || true
gzip -9n "$ROOT"/usr/share/man/man*/*
# Depends: the packages of the libraries the binary links (dpkg-shlibdeps
# wants a debian/control to exist; an empty one will do)
mkdir -p "$ST/shlibs/debian"
: > "$ST/shlibs/debian/control"
SHLIBS=$(cd "$ST/shlibs" && dpkg-shlibdeps -O "$ROOT/usr/bin/suiro" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$SHLIBS" ] || { echo "deb.sh: dpkg-shlibdeps found no libraries for $ROOT/usr/bin/suiro" >&2; exit 1; }
mkdir -p "$ROOT/DEBIAN"
cat > "$ROOT/DEBIAN/control" <<CTL
Package: suiro
Version: $VERSION
Architecture: $ARCH
Maintainer: suiro developers <suiro@localhost>
Section: net
Priority: optional
Installed-Size: $(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)
Depends: $SHLIBS, adduser, passwd
Description: data-flow and storage core of a water-utility data platform
 suiro stores the measurements of water-utility gateways (GW-IF over MQTT
 and HTTP) in one append-only, hash-chained, encrypted event log and serves
 them to apps (AP-IF) with an Admin API. This package runs it as the systemd
 service suiro (user suiro, data in /var/lib/suiro, configuration in
 /etc/suiro/suiro.ini, the master key in /etc/suiro/keys).
CTL
echo /etc/suiro/suiro.ini > "$ROOT/DEBIAN/conffiles"
install -m 0755 "$SRC"/scripts/packaging/deb/postinst "$SRC"/scripts/packaging/deb/prerm "$SRC"/scripts/packaging/deb/postrm "$ROOT/DEBIAN/"
mkdir -p "$OUT"
DEB=$OUT/suiro_${VERSION}_${ARCH}.deb
dpkg-deb --root-owner-group -Zxz --build "$ROOT" "$DEB" >/dev/null
echo "$DEB"
