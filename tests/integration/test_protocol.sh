#!/usr/bin/env bash
# Protocol conformance and negative tests (test_protocol.py) against the real server,
# with an EAB-only directory whose key is made by `attesta eab add`, and a second server
# whose challenge answers do not wait for the validation.
. "$(dirname "$0")/lib.sh"
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import cryptography' 2>/dev/null \
  || { echo "skip: python3-cryptography missing"; exit 77; }

start_challtestsrv
TLS_PORT=$(free_port)
write_config "$CT_HTTP_PORT" "$TLS_PORT" "enrollment_policies:
  default:
    identifiers: [dns, ip]
    challenges: [http-01, dns-01, tls-alpn-01]
  eab:
    identifiers: [dns]
    challenges: [http-01]
    eab_required: true
  devices:
    identifiers: [permanent-identifier, hardware-module]
    challenges: [device-attest-01]"
"$ATTESTA_BIN" eab add -c "$T/config.yaml" >"$T/eab.out" 2>"$T/eab.err" || { cat "$T/eab.err"; fail "eab add"; }
EAB_KID=$(sed -n 's/^kid: *//p' "$T/eab.out")
EAB_KEY=$(sed -n 's/^key: *//p' "$T/eab.out")
[ -n "$EAB_KID" ] && [ -n "$EAB_KEY" ] || { cat "$T/eab.out"; fail "eab add printed no kid/key"; }
# Challenge answers wait up to 1 s (room for a loaded sanitizer build to finish a loopback
# validation) and a failed try is repeated 3 s later, well past that bound.
sed -i 's/^    retry_delay: 1$/    retry_delay: 3\n    answer_wait: 1s/' "$T/config.yaml"
grep -q '^    answer_wait: 1s$' "$T/config.yaml" || fail "answer_wait not set for the main server"
start_attesta
# A second server, the same but for acme.challenges.answer_wait: 0 (answers at once, as before).
MAIN_T=$T MAIN_BASE=$BASE MAIN_ROOT=$ROOT
T=$MAIN_T/nowait
write_config "$CT_HTTP_PORT" "$TLS_PORT"
sed -i 's/^  challenges:$/  challenges:\n    answer_wait: 0/' "$T/config.yaml"
grep -q '^    answer_wait: 0$' "$T/config.yaml" || fail "answer_wait not set for the second server"
start_attesta
NOWAIT_BASE=$BASE NOWAIT_ROOT=$ROOT
T=$MAIN_T BASE=$MAIN_BASE ROOT=$MAIN_ROOT

cd "$(dirname "$0")"
/usr/bin/python3 test_protocol.py "$BASE" "$ROOT" "$MGMT_PORT" "$EAB_KID" "$EAB_KEY" "$T/data/attesta.db" \
  "$NOWAIT_BASE" "$NOWAIT_ROOT"
! grep -q -- "$EAB_KEY" "$T/attesta.log" || fail "EAB key appears in the server log"
