#!/usr/bin/env bash
# tests/integration/test_deb.sh BUILD_DIR SOURCE_DIR -- `make deb`
# (scripts/deb.sh) from the build directory (nothing compiled), then the
# package installed with dpkg into a scratch root, its files where the unit
# expects them:
#   - the control data: the project's version, Depends computed from the
#     binary's libraries (dpkg-shlibdeps) plus adduser, /etc/suiro/suiro.ini
#     a conffile; the maintainer scripts are valid sh (sh -n);
#   - `dpkg --root=R --force-script-chrootless` (the scripts run with
#     DPKG_ROOT=R; the scratch root has a minimal /etc/passwd): the user
#     suiro is made in R (a system user, no shell); the unit's ExecStart
#     binary and --config file exist; the configuration's data directory is
#     the unit's state directory, made by postinst, owned by suiro, 0750, with
#     a log; the configuration's key file exists, owned by suiro, 0600, in a
#     0700 directory; the first admin's password is in a root-only file; the
#     unit is enabled; `systemd-analyze verify --root=R` passes silently;
#   - the installed binary, run as the user suiro (setpriv), serves the data
#     directory postinst made with its key (a service that starts: the owners
#     and modes suffice), and `suiro verify` passes on it;
#   - installing it again (an upgrade) keeps the key, the data, an edited
#     configuration and the first password file; with the key lost and the
#     data there it makes no new key; remove keeps data and key;
#     purge removes the configuration and keeps data and key.
# Skips when dpkg-deb / dpkg-shlibdeps are missing; the install into the
# scratch root needs root (useradd --prefix, setpriv), else only the package's
# contents and scripts are checked (said as a skip).
set -u
BUILD=$(readlink -f "$1")
SRC=$(readlink -f "$2")
BIN=$BUILD/suiro
. "$(dirname "$0")/lib.sh"
sr_setup deb
if ! command -v dpkg-deb >/dev/null || ! command -v dpkg-shlibdeps >/dev/null; then
  skip "dpkg-deb or dpkg-shlibdeps is missing (packages dpkg, dpkg-dev): no package built"
  sr_finish deb
  exit $?
fi
sr_on_fail() { echo "  out=${out:0:600}"; }

out=$(bash "$SRC/scripts/deb.sh" "$BUILD" "$T" 2>&1); rc=$?
DEB=$(tail -1 <<<"$out")
VERSION=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$BUILD/CMakeCache.txt")
check "scripts/deb.sh builds the package from the build directory" "[ $rc -eq 0 ] && [ -s '$DEB' ]"
check "... named suiro_VERSION_ARCH.deb" "[ \"\$(basename '$DEB')\" = suiro_${VERSION}_$(dpkg --print-architecture).deb ]"
field() { dpkg-deb -f "$DEB" "$1"; }
check "Package suiro, the project's version ($VERSION)" "[ \"\$(field Package)\" = suiro ] && [ \"\$(field Version)\" = '$VERSION' ]"
dep=$(field Depends)
check "Depends: the libraries' packages (dpkg-shlibdeps) and adduser" \
  "[[ '$dep' == *libc6* && '$dep' == *liblmdb0* && '$dep' == *libuv1* && '$dep' == *libssl3* && '$dep' == *adduser* ]]"
dpkg-deb -e "$DEB" "$T/control"
check "/etc/suiro/suiro.ini is a conffile" "[ \"\$(cat $T/control/conffiles)\" = /etc/suiro/suiro.ini ]"
for s in postinst prerm postrm; do
  check "$s is valid sh and executable" "[ -x $T/control/$s ] && sh -n $T/control/$s"
done
list=$(dpkg-deb -c "$DEB" | awk '{print $6}')
for f in ./usr/bin/suiro ./lib/systemd/system/suiro.service ./etc/suiro/suiro.ini ./usr/share/man/man1/suiro.1.gz \
         ./usr/share/man/man5/suiro.ini.5.gz ./usr/share/doc/suiro/install.md; do
  check "the package has $f" "grep -qx '$f' <<<\"\$list\""
done
check "every file is owned by root" "[ -z \"\$(dpkg-deb -c '$DEB' | awk '\$2 != \"root/root\"')\" ]"

if [ "$(id -u)" -ne 0 ] || ! command -v useradd >/dev/null || ! command -v setpriv >/dev/null; then
  skip "not root (or no useradd, setpriv): the package is not installed into a scratch root"
  sr_finish deb
  exit $?
fi

# ---- installed into a scratch root --------------------------------------------
R=$T/root
mkdir -p "$R/etc" "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates"
: > "$R/var/lib/dpkg/status"
echo 'root:x:0:0:root:/root:/bin/sh' > "$R/etc/passwd"
echo 'root:x:0:' > "$R/etc/group"
echo 'root:*:19000:0:99999:7:::' > "$R/etc/shadow"
echo 'root:*::' > "$R/etc/gshadow"
chmod 0640 "$R/etc/shadow" "$R/etc/gshadow"
dpkgr() { dpkg --root="$R" --log=/dev/null --force-not-root --force-script-chrootless --force-depends "$@"; }
out=$(dpkgr -i "$DEB" 2>&1); rc=$?
check "dpkg --root installs it (maintainer scripts chrootless)" "[ $rc -eq 0 ]"
check "postinst made the system user suiro in the root (no login shell)" \
  "awk -F: '\$1 == \"suiro\" && \$3 < 1000 && \$7 == \"/usr/sbin/nologin\"' $R/etc/passwd | grep -q ."
uid=$(awk -F: '$1 == "suiro" {print $3}' "$R/etc/passwd")
gid=$(awk -F: '$1 == "suiro" {print $4}' "$R/etc/passwd")
U=$R/lib/systemd/system/suiro.service
exe=$(sed -n 's/^ExecStart=\([^ ]*\) .*/\1/p' "$U")
conf=$(sed -n 's/^ExecStart=.* --config \([^ ]*\)$/\1/p' "$U")
check "the unit's ExecStart binary is installed and executable ($exe)" "[ -n '$exe' ] && [ -x '$R$exe' ] && [ ! -d '$R$exe' ]"
check "the unit's --config file is installed ($conf)" "[ -n '$conf' ] && [ -s '$R$conf' ]"
check "the unit runs as suiro" "grep -qx User=suiro $U && grep -qx Group=suiro $U"
ini() { sed -n "s/^$1 = //p" "$R$conf"; }
data=$(ini data_dir)
keyf=$(ini key_file)
check "the configuration's data_dir is the unit's state directory" \
  "[ '$data' = /var/lib/suiro ] && grep -qx StateDirectory=suiro $U && grep -qx ReadWritePaths=/var/lib/suiro $U"
mode_own() { stat -c '%a %u:%g' "$1"; }
check "postinst made the data directory: suiro's, 0750, with a log" \
  "[ \"\$(mode_own '$R$data')\" = '750 $uid:$gid' ] && [ -d '$R$data/log' ] && [ -z \"\$(find '$R$data' ! -uid $uid)\" ]"
check "postinst made the key file: suiro's, 0600, in a 0700 directory, outside the data directory" \
  "[ \"\$(mode_own '$R$keyf')\" = '600 $uid:$gid' ] && [ \"\$(mode_own \"\$(dirname '$R$keyf')\")\" = '700 $uid:$gid' ] && [[ '$keyf' != $data/* ]]"
check "... 64 hex digits" "grep -qxE '[0-9a-f]{64}' '$R$keyf'"
check "the first admin's temporary password: in a root-only file, not on the terminal" \
  "[ \"\$(mode_own $R/etc/suiro/initial-admin.txt)\" = '600 0:0' ] && grep -q 'temporary password' $R/etc/suiro/initial-admin.txt && ! grep -q 'temporary password: ' <<<\"\$out\""
check "the unit is enabled (multi-user.target.wants)" \
  "[ \"\$(readlink $R/etc/systemd/system/multi-user.target.wants/suiro.service)\" = /lib/systemd/system/suiro.service ]"
if command -v systemd-analyze >/dev/null; then
  mkdir -p "$R/usr/lib/systemd/system"
  cp -a /lib/systemd/system/*.target /lib/systemd/system/*.slice "$R/usr/lib/systemd/system/" 2>/dev/null
  out=$(cd "$T" && MANPATH=$R/usr/share/man systemd-analyze verify --root="$R" suiro.service 2>&1); rc=$?
  check "systemd-analyze verify --root on the installed unit: passes, says nothing" "[ $rc -eq 0 ] && [ -z \"\$out\" ]"
else
  skip "systemd-analyze is not installed (package systemd)"
fi

# the installed server on what postinst made, as the unit runs it: as the
# user suiro (setpriv: its uid and gid, no other group), the paths under the
# scratch root, ports the kernel picks -- a service that starts, with the
# owners and modes postinst gave
sed -e "s#^data_dir = #data_dir = $R#" -e "s#^key_file = #key_file = $R#" -e 's#^listen = 127.0.0.1:[0-9]*#listen = 127.0.0.1:0#' \
  "$R$conf" > "$T/run.ini"
chmod 0755 "$T" "$R" "$R/etc" "$R/etc/suiro" "$R/var" "$R/var/lib"
chmod 0644 "$T/run.ini"
printf '#!/bin/sh\nexec setpriv --reuid=%s --regid=%s --clear-groups %s "$@"\n' "$uid" "$gid" "$R$exe" > "$T/as-suiro"
chmod 0755 "$T/as-suiro"
BIN=$T/as-suiro
sr_start --config "$T/run.ini"
check "the installed binary, as suiro, serves the installed data directory with the installed key" "[ -n \"\$HP\" ]"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HP/api/v1/masters/datapoints")
check "... and answers HTTP (401 without a token)" "[ '$code' = 401 ]"
sr_stop
check "... and stops cleanly" "[ $rc -eq 0 ]"
check "... everything it wrote is suiro's" "[ -z \"\$(find '$R$data' ! -uid $uid)\" ]"
out=$("$BIN" verify "$R$data" --key-file "$R$keyf" 2>&1); rc=$?
check "suiro verify (as suiro) on it passes" "[ $rc -eq 0 ]"

# upgrade: the same package again
key_before=$(sha256sum < "$R$keyf")
pw_before=$(sha256sum < "$R/etc/suiro/initial-admin.txt")
echo "; edited" >> "$R$conf"
out=$(dpkgr -i "$DEB" 2>&1); rc=$?
check "installing it again (an upgrade) works" "[ $rc -eq 0 ]"
check "... keeps the key, the first password file and the user" \
  "[ \"\$(sha256sum < '$R$keyf')\" = \"\$key_before\" ] && [ \"\$(sha256sum < $R/etc/suiro/initial-admin.txt)\" = \"\$pw_before\" ] && [ \$(grep -c '^suiro:' $R/etc/passwd) -eq 1 ]"
check "... keeps the edited configuration (a conffile)" "tail -1 '$R$conf' | grep -qx '; edited'"
out=$("$BIN" verify "$R$data" --key-file "$R$keyf" 2>&1); rc=$?
check "... and the data directory (verify passes, no second init)" "[ $rc -eq 0 ]"

mv "$R$keyf" "$T/key.away"
out=$(dpkgr -i "$DEB" 2>&1); rc=$?
check "the key lost but the data there: no new key is made (it would not open the log), said so" \
  "[ $rc -eq 0 ] && [ ! -e '$R$keyf' ] && [[ \$out == *'no new key'* ]]"
mv "$T/key.away" "$R$keyf"

out=$(dpkgr -r suiro 2>&1); rc=$?
check "remove: the program goes" "[ $rc -eq 0 ] && [ ! -e '$R$exe' ] && [ ! -e $U ]"
check "... the unit is disabled" "[ ! -e $R/etc/systemd/system/multi-user.target.wants/suiro.service ]"
check "... the data directory and the key stay" "[ -d '$R$data/log' ] && [ -s '$R$keyf' ]"
out=$(dpkgr -P suiro 2>&1); rc=$?
check "purge: the configuration and the password file go" "[ $rc -eq 0 ] && [ ! -e '$R$conf' ] && [ ! -e $R/etc/suiro/initial-admin.txt ]"
check "... the data directory and the key stay" "[ -d '$R$data/log' ] && [ -s '$R$keyf' ]"
sr_finish deb
