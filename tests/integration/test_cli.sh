#!/usr/bin/env bash
# The attesta subcommands an administrator runs by hand: version, help, config check
# (good and bad files with FILE:LINE), ca init (0600 keys, idempotent), attest inspect
# on the real Apple vectors at fixed times and now (expired), unknown commands.
. "$(dirname "$0")/lib.sh"
V="${ATTESTA_SHARED_DIR:-$(dirname "$0")/../../../shared}/vectors/apple"
[ -d "$V" ] || { echo "skip: no Apple vectors at $V"; exit 77; }
A="$ATTESTA_BIN"

"$A" version | grep -Eq '^attesta [0-9]+\.[0-9]+\.[0-9]+$' || fail "version"
"$A" help | grep -q "serve" || fail "help"
set +e; "$A" frobnicate >/dev/null 2>"$T/unknown.err"; rc=$?; set -e
[ $rc -eq 2 ] && grep -q 'unknown command "frobnicate"' "$T/unknown.err" || fail "unknown command: rc $rc"
pass "version, help, unknown command (exit 2)"

printf 'server:\n  listen: "127.0.0.1:9443"\n' >"$T/good.yaml"
"$A" config check "$T/good.yaml" | grep -q "OK" || fail "config check on a good file"
printf 'server:\n  listen: "127.0.0.1:9443"\n  workers: many\n' >"$T/bad.yaml"
set +e; "$A" config check "$T/bad.yaml" >"$T/bad.out" 2>&1; rc=$?; set -e
[ $rc -eq 1 ] || fail "config check on a bad file: rc $rc"
grep -q "$T/bad.yaml:3: server.workers: " "$T/bad.out" || { cat "$T/bad.out"; fail "no FILE:LINE"; }
printf 'server:\n  lisen: "x"\n' >"$T/typo.yaml"
set +e; "$A" config check "$T/typo.yaml" >"$T/typo.out" 2>&1; set -e
grep -q "$T/typo.yaml:2: server.lisen: " "$T/typo.out" || { cat "$T/typo.out"; fail "unknown key not reported"; }
pass "config check: OK, wrong type and unknown key with FILE:LINE"

"$A" ca init --dir "$T/ca" --name corp >/dev/null || fail "ca init"
for f in root.key intermediate.key; do
  [ "$(stat -c %a "$T/ca/$f")" = 600 ] || fail "$f is not 0600"
done
openssl verify -CAfile "$T/ca/root.pem" "$T/ca/intermediate.pem" >/dev/null || fail "intermediate does not chain"
sum=$(sha256sum "$T/ca/intermediate.pem")
"$A" ca init --dir "$T/ca" --name corp >/dev/null || fail "ca init twice"
[ "$(sha256sum "$T/ca/intermediate.pem")" = "$sum" ] || fail "ca init overwrote the intermediate"
pass "ca init: chained root + intermediate, keys 0600, second run keeps them"

while read -r file at serial; do
  "$A" attest inspect "$V/$file" --at "$at" >"$T/inspect.out" || { cat "$T/inspect.out"; fail "inspect $file at $at"; }
  grep -q "serial: *$serial" "$T/inspect.out" || fail "inspect $file: serial"
  grep -q "verification: OK" "$T/inspect.out" || fail "inspect $file: not OK"
  set +e; "$A" attest inspect "$V/$file" >"$T/now.out"; rc=$?; set -e
  [ $rc -eq 1 ] && grep -q "expired" "$T/now.out" || fail "inspect $file now: rc $rc, want expired"
  pass "attest inspect $file: OK at $at, expired now"
done <<'ROWS'
attobj_WRPWFW61H9.cbor 2026-05-01T00:00:00Z WRPWFW61H9
challenge_payload_TMWFWWWP67.json 2025-08-01T00:00:00Z TMWFWWWP67
mdm_chain_HH0K6TJY0J.pem 2026-05-01T00:00:00Z HH0K6TJY0J
ROWS
set +e; "$A" attest inspect "$V/mdm_chain_WV0NCDC2TX.pem" --at 2026-05-06T00:00:00Z \
  --root "$T/ca/root.pem" >"$T/wrongroot.out"; rc=$?; set -e
[ $rc -eq 1 ] || fail "inspect against a wrong root: rc $rc"
pass "attest inspect refuses a chain under another root"
