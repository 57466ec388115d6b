#!/usr/bin/env bash
# Secrets stay secret: after an EAB registration (a wrong MAC, then the right one) and an
# issuance at log level debug, no log the server wrote (stderr, access log, events file)
# and no CLI output other than the one-time `eab add` contains the EAB key, PEM private
# key material or any key file's contents; every key file in data_dir is mode 0600.
. "$(dirname "$0")/lib.sh"
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import cryptography' 2>/dev/null \
  || { echo "skip: python3-cryptography missing"; exit 77; }
cd "$(dirname "$0")"

start_challtestsrv
TLS_PORT=$(free_port)
write_config "$CT_HTTP_PORT" "$TLS_PORT" "enrollment_policies:
  default:
    identifiers: [dns]
    challenges: [http-01]
  eab:
    identifiers: [dns]
    challenges: [http-01]
    eab_required: true"
sed -i "s|^  workers: 2$|  workers: 2\n  access_log: \"$T/access.log\"\n  log_level: debug|" "$T/config.yaml"
"$ATTESTA_BIN" eab add -c "$T/config.yaml" >"$T/eab.out" 2>"$T/eab.err" || { cat "$T/eab.err"; fail "eab add"; }
EAB_KID=$(sed -n 's/^kid: *//p' "$T/eab.out")
EAB_KEY=$(sed -n 's/^key: *//p' "$T/eab.out")
[ -n "$EAB_KID" ] && [ -n "$EAB_KEY" ] || fail "eab add printed no kid/key"
start_attesta
/usr/bin/python3 secrets_flow.py "$BASE" "$ROOT" "$MGMT_PORT" "$EAB_KID" "$EAB_KEY" || fail "EAB flow"
mkdir -p "$T/cli"
"$ATTESTA_BIN" eab list -c "$T/config.yaml" >"$T/cli/eab-list.out" 2>&1 || fail "eab list"
"$ATTESTA_BIN" config check "$T/config.yaml" >"$T/cli/config-check.out" 2>&1 || fail "config check"
"$ATTESTA_BIN" eab add --kid second -c "$T/config.yaml" >"$T/eab2.out" 2>"$T/cli/eab2.err" || fail "eab add 2"
KEY2=$(sed -n 's/^key: *//p' "$T/eab2.out")
"$ATTESTA_BIN" eab list -c "$T/config.yaml" >"$T/cli/eab-list2.out" 2>&1 || fail "eab list 2"
"$ATTESTA_BIN" eab remove second -c "$T/config.yaml" >"$T/cli/eab-remove.out" 2>&1 || fail "eab remove"
stop_attesta

LOGS=("$T/attesta.log" "$T/attesta.out" "$T/access.log" "$T/eab.err" "$T"/cli/*)
[ -f "$T/data/events.jsonl" ] && LOGS+=("$T/data/events.jsonl")
[ -s "$T/access.log" ] || fail "no access log written"
for s in "$EAB_KEY" "$KEY2" "PRIVATE KEY"; do
  ! grep -rlF -- "$s" "${LOGS[@]}" || fail "secret '${s:0:12}...' found in the logs above"
done
# the EAB key in other encodings (standard base64, hex)
EAB_HEX=$(/usr/bin/python3 -c 'import sys,base64; k=sys.argv[1]; print(base64.urlsafe_b64decode(k+"="*(-len(k)%4)).hex())' "$EAB_KEY")
EAB_STD=$(/usr/bin/python3 -c 'import sys,base64; k=sys.argv[1]; print(base64.b64encode(base64.urlsafe_b64decode(k+"="*(-len(k)%4))).decode().rstrip("="))' "$EAB_KEY")
for s in "$EAB_HEX" "$EAB_STD"; do
  ! grep -rliF -- "$s" "${LOGS[@]}" || fail "EAB key (re-encoded) found in the logs"
done
nkeys=0
while IFS= read -r -d '' f; do
  nkeys=$((nkeys + 1))
  mode=$(stat -c %a "$f")
  [ "$mode" = 600 ] || fail "$f has mode $mode, want 600"
  # every base64 line of the key body must be absent from the logs
  while read -r line; do
    [ ${#line} -ge 40 ] || continue
    ! grep -rlF -- "$line" "${LOGS[@]}" || fail "contents of $f found in the logs"
  done < <(grep -v -- '-----' "$f")
done < <(find "$T/data" -type f \( -name '*.key' -o -name '*key*.pem' \) -print0)
[ "$nkeys" -ge 2 ] || fail "expected the CA and TLS keys in data_dir, found $nkeys"
[ "$(stat -c %a "$T/data/attesta.db")" = 600 ] || echo "# FINDING (not failed): attesta.db holds EAB keys in clear and has mode $(stat -c %a "$T/data/attesta.db")"
pass "no secret in ${#LOGS[@]} logs/outputs; $nkeys key files are 0600"
