#!/usr/bin/env bash
# tests/integration/test_install.sh BUILD_DIR -- `make install` (cmake
# --install of the build, CMakeLists.txt and scripts/packaging/install.cmake) into a
# scratch DESTDIR, nothing rebuilt:
#   - PREFIX=/usr: the binary, suiro(1), suiro.ini(5), the docs, the unit in
#     usr/lib/systemd/system, the default /etc/suiro/suiro.ini;
#   - the unit and the configuration agree: ExecStart is the installed binary
#     reading the installed configuration, the configuration's data_dir is
#     the unit's StateDirectory= (/var/lib/suiro), its key file is outside
#     the data directory and the configuration file; the configuration is
#     valid (suiro serve --print-config) and listens on loopback only;
#   - Type=notify, the user suiro and the sandbox options are in the unit;
#   - `systemd-analyze verify` passes on the installed unit, silently (the
#     binary and the man pages of its Documentation= must exist: --root), and
#     `systemd-analyze security --offline` rates it at most 2.5;
#   - PREFIX=/usr/local: /usr/local/bin/suiro, /usr/local/etc/suiro;
#   - an edited configuration is kept by a second install (the new default
#     goes beside it as suiro.ini.dist).
set -u
BUILD=$(readlink -f "$1")
BIN=$BUILD/suiro
. "$(dirname "$0")/lib.sh"
sr_setup install

X=$T/x
out=$(DESTDIR=$X cmake --install "$BUILD" --prefix /usr 2>&1); rc=$?
check "cmake --install --prefix /usr with DESTDIR" "[ $rc -eq 0 ]" "$out"
for f in usr/bin/suiro usr/share/man/man1/suiro.1 usr/share/man/man5/suiro.ini.5 usr/share/doc/suiro/install.md \
         usr/share/doc/suiro/README.md usr/share/doc/suiro/configuration.md usr/lib/systemd/system/suiro.service \
         etc/suiro/suiro.ini; do
  check "installed: /$f" "[ -s '$X/$f' ]"
done
check "the binary is executable" "[ -x '$X/usr/bin/suiro' ]"
check "nothing is installed outside the prefix, /etc and the unit" \
  "[ -z \"\$(cd '$X' && find . -type f | grep -v -e '^./usr/' -e '^./etc/suiro/')\" ]"

U=$X/usr/lib/systemd/system/suiro.service
key() { sed -n "s/^$1=//p" "$U"; }
exec_start=$(key ExecStart)
check "ExecStart runs the installed binary with the installed configuration" \
  "[ \"\$exec_start\" = '/usr/bin/suiro serve --config /etc/suiro/suiro.ini' ]" "$exec_start"
for kv in Type=notify NotifyAccess=main User=suiro Group=suiro StateDirectory=suiro ProtectSystem=strict \
          ReadWritePaths=/var/lib/suiro ProtectHome=yes PrivateTmp=yes NoNewPrivileges=yes PrivateDevices=yes \
          ProtectKernelTunables=yes ProtectKernelModules=yes ProtectKernelLogs=yes ProtectControlGroups=yes \
          CapabilityBoundingSet= LimitNOFILE=65536 WantedBy=multi-user.target; do
  check "the unit has $kv" "grep -qx '$kv' '$U'"
done
check "the unit filters system calls (@system-service) and address families" \
  "grep -q '^SystemCallFilter=@system-service' '$U' && grep -q '^RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' '$U'"
check "no ExecReload (suiro reads its configuration at start only)" "! grep -q '^ExecReload' '$U'"

# the configuration the unit names
C=$X/etc/suiro/suiro.ini
pc=$("$BIN" serve --config "$C" --print-config 2>"$T/err"); rc=$?
check "the installed configuration is valid (serve --print-config)" "[ $rc -eq 0 ]" "$(cat "$T/err")"
cfg() { awk -v s="[$1]" -v k="$2" '/^\[/{in_s = ($0 == s)} in_s && $1 == k {sub(/^[^=]*= ?/, ""); print}' <<<"$pc"; }
check "its data_dir is the unit's state directory" "[ \"\$(cfg engine data_dir)\" = /var/lib/suiro ]"
kf=$(cfg engine key_file)
check "its key file is under /etc/suiro/keys: outside the data directory and the configuration file" \
  "[[ '$kf' == /etc/suiro/keys/* ]] && [[ '$kf' != /var/lib/suiro* ]] && [ '$kf' != /etc/suiro/suiro.ini ]"
check "it listens on loopback only" \
  "[ \"\$(cfg mqtt listen)\" = 127.0.0.1:1883 ] && [ \"\$(cfg http listen)\" = 127.0.0.1:8080 ] && [ -z \"\$(cfg mqtt tls_listen)\" ]"

# systemd-analyze on the installed tree: its own targets beside the unit
if command -v systemd-analyze >/dev/null; then
  cp -a /lib/systemd/system/*.target /lib/systemd/system/*.slice "$X/usr/lib/systemd/system/" 2>/dev/null
  out=$(cd "$T" && MANPATH=$X/usr/share/man systemd-analyze verify --root="$X" suiro.service 2>&1); rc=$?
  check "systemd-analyze verify on the installed unit: passes, says nothing" "[ $rc -eq 0 ] && [ -z \"\$out\" ]" "$out"
  mv "$X/usr/bin/suiro" "$X/usr/bin/suiro.away"
  out=$(cd "$T" && MANPATH=$X/usr/share/man systemd-analyze verify --root="$X" suiro.service 2>&1); rc=$?
  check "... and fails when ExecStart's binary is missing (it checks)" "[ $rc -ne 0 ] && [[ \$out == *suiro* ]]" "$out"
  mv "$X/usr/bin/suiro.away" "$X/usr/bin/suiro"
  out=$(cd "$T" && systemd-analyze security --offline=true --threshold=25 --root="$X" suiro.service 2>&1); rc=$?
  check "systemd-analyze security --offline: exposure at most 2.5" "[ $rc -eq 0 ]" "$(tail -1 <<<"$out")"
  echo "  ($(grep -o 'Overall exposure level.*' <<<"$out"))"
else
  skip "systemd-analyze is not installed (package systemd): the unit is not verified"
fi

# another prefix
Y=$T/y
out=$(DESTDIR=$Y cmake --install "$BUILD" --prefix /usr/local 2>&1); rc=$?
check "cmake --install --prefix /usr/local" "[ $rc -eq 0 ] && [ -x $Y/usr/local/bin/suiro ]" "$out"
check "... its unit runs /usr/local/bin/suiro with /usr/local/etc/suiro/suiro.ini" \
  "grep -qx 'ExecStart=/usr/local/bin/suiro serve --config /usr/local/etc/suiro/suiro.ini' $Y/usr/local/lib/systemd/system/suiro.service"
check "... whose key file is /usr/local/etc/suiro/keys/master.key" \
  "grep -qx 'key_file = /usr/local/etc/suiro/keys/master.key' $Y/usr/local/etc/suiro/suiro.ini"

# an edited configuration survives another install
echo "; edited by the operator" >> "$C"
before=$(cat "$C")
out=$(DESTDIR=$X cmake --install "$BUILD" --prefix /usr 2>&1); rc=$?
check "a second install keeps the edited configuration" "[ $rc -eq 0 ] && [ \"\$(cat '$C')\" = \"\$before\" ]"
check "... and puts the new default beside it (suiro.ini.dist), saying so" \
  "[ -s $X/etc/suiro/suiro.ini.dist ] && ! grep -q 'edited by the operator' $X/etc/suiro/suiro.ini.dist && [[ \$out == *suiro.ini.dist* ]]"
sr_finish install
