#!/usr/bin/env bash
# tests/integration/test_serve_config.sh -- `suiro serve`'s configuration
# through the real binary (issue #12, section 2 "Configuration"): every value
# is checked before anything opens (an option's bad value names the option,
# a file's names the file, the line and the key; exit 2, nothing created);
# --print-config prints the effective configuration (defaults, then the file,
# then the options) as INI, exits 0 and opens nothing; its output read back
# as --config prints the same; the engine keys reach a running server; the
# log's key from a command (key_file = cmd:...), and a failing one refused;
# [crypto] names (docs/keys.md "Algorithms"): an unknown one refused at start
# naming the key and the known names, and the platform key a first start
# makes is of [crypto] signature.
# usage: test_serve_config.sh SUIRO_BIN
set -u
BIN=$(readlink -f "$1")
. "$(dirname "$0")/lib.sh"
sr_setup cfg
sr_on_fail() { echo "  rc=${rc:-} out=${out:0:300} err=$(head -c 300 "$T/err" 2>/dev/null)"; }
W=$T/cwd
mkdir -p "$W"
run() { sr_run "$@"; }
listing() { sr_listing "$1"; }
before=$(listing "$W")

# ---- 1. a bad value of an option: exit 2 naming it, before anything opens ---------
CASES=("--log-level foo|--log-level|'foo'|debug, info, warn, error"
       "--log-level INFO|--log-level|'INFO'|debug"
       "--log-level=|--log-level|''|debug")
for c in "${CASES[@]}"; do
  IFS='|' read -r args w1 w2 w3 <<<"$c"
  # shellcheck disable=SC2086
  run serve --data "$T/nodir" --mqtt 127.0.0.1:0 --http 127.0.0.1:0 $args
  check "serve $args: exit 2 naming the option, the value and the allowed ones, nothing created" \
    "[ $rc -eq 2 ] && grep -q -- '$w1' $T/err && grep -qF -- \"$w2\" $T/err && grep -qF -- '$w3' $T/err && [ ! -e $T/nodir ] && [ \"\$(listing $W)\" = \"\$before\" ]"
done
long=$(head -c 2000 /dev/zero | tr '\0' 'd')
run serve --data "/$long" --print-config
check "serve --data with a path longer than the field: exit 2 naming it" "[ $rc -eq 2 ] && grep -q -- '--data' $T/err && grep -q 'data_dir' $T/err"

# ---- 2. a bad value in the file: the file, the line and the key --------------------
printf '[engine]\nqueue_max = 1000\n\n[log]\nlevel = loud\n' > "$T/bad1.ini"
run serve --config "$T/bad1.ini" --data "$T/nodir"
check "a bad enumerated value: file:line and key, exit 2" \
  "[ $rc -eq 2 ] && grep -qF -- '$T/bad1.ini:5: bad value for [log] level' $T/err && [ ! -e $T/nodir ]"
printf '[engine]\nhead_max = 3\n' > "$T/bad2.ini"
run serve --config "$T/bad2.ini" --print-config
check "a number out of range: file:line, key and range, exit 2 (also with --print-config)" \
  "[ $rc -eq 2 ] && grep -qF -- '$T/bad2.ini:2: bad value for [engine] head_max: '\"'3'\"' (16 … 65536)' $T/err && [ -z \"\$out\" ]"
printf '[mqtt]\ntls_listen = 127.0.0.1:0\n' > "$T/bad3.ini"
run serve --config "$T/bad3.ini" --print-config
check "a check between keys: exit 2 naming it" "[ $rc -eq 2 ] && grep -q 'tls_listen needs tls_cert' $T/err"

# ---- 3. --print-config ----------------------------------------------------------
run serve --print-config --data "$T/nodir"
check "--print-config: exit 0, INI on stdout, nothing opened or created" \
  "[ $rc -eq 0 ] && grep -q '^\[engine\]$' <<<\"\$out\" && grep -q '^data_dir = $T/nodir$' <<<\"\$out\" && [ ! -e $T/nodir ] && [ \"\$(listing $W)\" = \"\$before\" ]"
check "--print-config prints the defaults of keys not set" \
  "grep -q '^queue_max = 65536$' <<<\"\$out\" && grep -q '^level = info$' <<<\"\$out\" && grep -q '^group_max = 4096$' <<<\"\$out\" && grep -q '^tls_client_cert = optional$' <<<\"\$out\""
printf '[engine]\nqueue_max = 1000\nzstd_level = 0\n[log]\nlevel = warn\n[http]\nlisten = 127.0.0.1:9\n' > "$T/s.ini"
run serve --config "$T/s.ini" --log-level debug --mqtt 127.0.0.1:7 --print-config
check "--print-config: the file over the defaults, the options over the file" \
  "[ $rc -eq 0 ] && grep -q '^queue_max = 1000$' <<<\"\$out\" && grep -q '^zstd_level = 0$' <<<\"\$out\" && grep -q '^level = debug$' <<<\"\$out\" && grep -q '^listen = 127.0.0.1:7$' <<<\"\$out\" && grep -q '^listen = 127.0.0.1:9$' <<<\"\$out\""
printf '%s\n' "$out" > "$T/printed.ini"
first=$out
run serve --config "$T/printed.ini" --print-config
check "--print-config's output read back as --config prints the same" "[ $rc -eq 0 ] && [ \"\$out\" = \"\$first\" ]"

# ---- 4. the engine keys reach the server --------------------------------------------
D=$T/data
"$BIN" init --demo "$D" > /dev/null 2>&1
printf '[engine]\nsegment_bytes = 1048576\ngroup_max = 8\nzstd_level = 3\n' > "$T/eng.ini"
sr_start --config "$T/eng.ini" --data "$D" --mqtt 127.0.0.1:0 --http 127.0.0.1:0
check "the server starts with the engine keys set" "grep -q 'listening http=' $T/out"
sr_stop

# ---- 5. the key from a command (docs/configuration.md "Where the key comes from") ----
python3 -c 'import os; print(os.urandom(32).hex())' > "$T/k.hex"
DK=$T/enc
"$BIN" init --demo "$DK" --key-file "$T/k.hex" > /dev/null 2>&1
printf '[engine]\nkey_file = cmd:cat %s\n' "$T/k.hex" > "$T/kcmd.ini"
sr_start --config "$T/kcmd.ini" --data "$DK" --mqtt 127.0.0.1:0 --http 127.0.0.1:0
check "the server starts with key_file = cmd:COMMAND" "grep -q 'listening http=' $T/out"
sr_stop
printf '[engine]\nkey_file = cmd:echo no-key-here; exit 4\n' > "$T/kbad.ini"
run serve --config "$T/kbad.ini" --data "$DK" --mqtt 127.0.0.1:0 --http 127.0.0.1:0
check "a key command that fails: the server does not start, naming it and its status" \
  "[ $rc -ne 0 ] && grep -q 'cmd:echo no-key-here; exit 4: exited with status 4' $T/err"

# ---- 6. [crypto]: algorithm names of the one table ---------------------------------
printf '[crypto]\nsignature = RS256\n' > "$T/cbad.ini"
run serve --config "$T/cbad.ini" --data "$T/nodir" --print-config
check "[crypto] signature = RS256: exit 2 naming the key and the known names, nothing created" \
  "[ $rc -eq 2 ] && grep -qF \"[crypto] signature: unknown signature algorithm 'RS256' (known: ES256, ES384, PS256, EdDSA)\" $T/err && [ ! -e $T/nodir ]"
printf '[crypto]\naead = ChaCha20-Poly1305\n' > "$T/cbad2.ini"
run serve --config "$T/cbad2.ini" --data "$T/nodir" --print-config
check "[crypto] aead = ChaCha20-Poly1305: exit 2 naming it and AES-256-GCM" \
  "[ $rc -eq 2 ] && grep -qF \"[crypto] aead: unknown AEAD 'ChaCha20-Poly1305' (known: AES-256-GCM)\" $T/err"
DC=$T/crypto
"$BIN" init --demo "$DC" > /dev/null 2>&1
rm -f "$DC/platform-key.pem" "$DC/platform-cert.pem"   # a data directory from before the platform key
printf '[crypto]\nsignature = es384\n' > "$T/c384.ini"
sr_start --config "$T/c384.ini" --data "$DC" --mqtt 127.0.0.1:0 --http 127.0.0.1:0
check "a first start with [crypto] signature = es384 makes a P-384 platform key" \
  "grep -q 'listening http=' $T/out && openssl pkey -in $DC/platform-key.pem -noout -text 2>/dev/null | grep -q 'NIST CURVE: P-384'"
sr_stop
sr_start --data "$DC" --mqtt 127.0.0.1:0 --http 127.0.0.1:0
check "... and a later start with the default (ES256) keeps it" \
  "grep -q 'listening http=' $T/out && openssl pkey -in $DC/platform-key.pem -noout -text 2>/dev/null | grep -q 'NIST CURVE: P-384'"
sr_stop

sr_finish
