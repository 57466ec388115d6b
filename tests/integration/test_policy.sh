#!/usr/bin/env bash
# Enrollment policies end to end: attesta-device-sim enrolls through policies that
# consult the mock MDM (tests/mockmdm/mock_mdm.py), evaluate device roles, render
# templates and sign with two CAs. Checks admissions and refusals (with the rule that
# decided them), MDM failures, manual approval, supersede, lookup coalescing under 100
# concurrent enrollments, and `attesta audit`.
. "$(dirname "$0")/lib.sh"
: "${SIM_BIN:?SIM_BIN must point at attesta-device-sim}"
command -v sqlite3 >/dev/null || { echo "skip: sqlite3 missing"; exit 77; }
[ -x /usr/bin/python3 ] || { echo "skip: python3 missing"; exit 77; }
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)

cat >"$T/devices.json" <<'JSON'
{"devices": [
  {"serial": "C02CORP00001", "udid": "00008103-00000000000C0001", "blueprint": "Corp Macs", "email": "alice@example.com"},
  {"serial": "C02CORP00002", "udid": "00008103-00000000000C0002", "blueprint": "Corp Macs", "email": "bob@example.com"},
  {"serial": "C02CONC00001", "udid": "00008103-00000000000C0003", "blueprint": "Corp Macs", "email": "carol@example.com"},
  {"serial": "C02LAB000001", "udid": "00008103-00000000000C0004", "blueprint": "Lab Macs", "email": "dave@example.com"},
  {"serial": "C02UNMANAGED", "udid": "00008103-00000000000C0005", "blueprint": "Corp Macs", "managed": false},
  {"serial": "C02IPAD00001", "udid": "00008103-00000000000C0006", "blueprint": "Corp iPads", "email": "erin@example.com"},
  {"serial": "C02IPAD00002", "udid": "00008103-00000000000C0007", "blueprint": "Corp iPads", "email": "frank@example.com"}
]}
JSON
/usr/bin/python3 "$SRC/tests/mockmdm/mock_mdm.py" 0 "$T/devices.json" >"$T/mock.port" 2>"$T/mock.log" &
PIDS+=($!)
for _ in $(seq 50); do [ -s "$T/mock.port" ] && break; sleep 0.1; done
MPORT=$(head -n1 "$T/mock.port")
[ -n "$MPORT" ] || fail "mock MDM did not start"
M="http://127.0.0.1:$MPORT"
CLOSED=$(free_port) # nothing listens here: "MDM down"
mock() { curl -sf -d "$2" "$M/$1"; }
export IT_KANDJI_TOKEN=kandji-test-token-s3cr3t

DNS_PORT=$(free_port)
"$SIM_BIN" ca-init --apple-ca "$T/apple" >/dev/null || fail "sim ca-init"
kandji_source() { # NAME BASE
  cat <<EOF
  $1:
    type: http
    request: {url: "$2/api/v1/devices?serial_number=\${/attest/serial|urlencode}"}
    auth: {type: bearer, token_env: IT_KANDJI_TOKEN}
    records: "\$"
    match: {field: serial_number, equals: "\${/attest/serial}"}
    conditions: [{path: mdm_enabled, op: is_true}]
    attributes: {user_email: user.email, blueprint: blueprint_name}
    timeout: 2s
    retry: {attempts: 2, deadline: 4s}
EOF
}
write_config 80 443 "attestation:
  apple:
    roots: [\"$T/apple/apple-root.pem\"]
cas:
  default:
  corp:
signal_sources:
$(kandji_source kandji "$M")
$(kandji_source kandjidown "http://127.0.0.1:$CLOSED")
templates:
  mac-wifi:
    validity: 30d
    subject:
      - {CN: \"\${/attest/serial}\"}
      - {O: \"Example Corp\"}
      - {OU: \"\${/mdm/kandji/blueprint}\"}
    san:
      permanent_identifier: \"\${/attest/serial}\"
      email: \"\${/mdm/kandji/user_email}\"
    key_usage: [digitalSignature]
    extended_key_usage: [clientAuth]
    renewal_window: 10d
  tablet:
    subject:
      - {CN: \"tablet \${/attest/serial}\"}
      - {O: \"Example Tablets\"}
    extended_key_usage: [clientAuth]
device_roles:
  managed-mac:
    when:
      - {source: kandji, result: allowed}
      - {source: kandji, attribute: blueprint, op: equals, value: \"Corp Macs\"}
enrollment_policies:
  default: {identifiers: [dns], challenges: [http-01], ca: default}
  macs:
    identifiers: [permanent-identifier]
    challenges: [device-attest-01]
    ca: corp
    signal_sources: [kandji]
    roles: [managed-mac]
    template: mac-wifi
    supersede: revoke
  ipads:
    identifiers: [permanent-identifier]
    challenges: [device-attest-01]
    ca: default
    signal_sources: [kandji]
    template: tablet
    approval: manual
  bulk:
    identifiers: [permanent-identifier]
    challenges: [device-attest-01]
    ca: default
    signal_sources: [kandji]
  down:
    identifiers: [permanent-identifier]
    challenges: [device-attest-01]
    ca: default
    signal_sources: [kandjidown]"
start_attesta
C=(-c "$T/config.yaml")
sim() { # POLICY SERIAL [flags]
  local pol=$1 serial=$2
  shift 2
  "$SIM_BIN" enroll --directory "$BASE/acme/$pol/directory" --trust "$ROOT" --apple-ca "$T/apple" \
    --serial "$serial" "$@"
}
# refused NAME POLICY SERIAL TYPE PATTERN: the enrollment is refused at the challenge with
# TYPE and a detail holding PATTERN. A device that policy judged and refused gets
# rejectedIdentifier (E-18); one refused because an MDM could not answer stays unauthorized.
refused() {
  local name=$1 pol=$2 serial=$3 type=$4 pat=$5 rc
  set +e
  sim "$pol" "$serial" >"$T/$name.out" 2>&1
  rc=$?
  set -e
  [ $rc -eq 1 ] || { cat "$T/$name.out"; fail "$name: exit $rc, want 1 (refused)"; }
  grep -q "step=challenge .*type=$type " "$T/$name.out" || { cat "$T/$name.out"; fail "$name: not refused at the challenge with $type"; }
  grep -qF -- "$pat" "$T/$name.out" || { cat "$T/$name.out"; fail "$name: detail lacks '$pat'"; }
  pass "$name refused: $pat"
}
certs() { sqlite3 "$T/data/attesta.db" "SELECT count(*) FROM records WHERE kind = 3;"; }
issued_serial() { sed -n 's/^result: issued serial=\([0-9a-f]*\).*/\1/p' "$1"; }

# --- admitted: MDM knows the device, the condition and role hold, template from MDM data
sim macs C02CORP00001 --out "$T/mac1.pem" >"$T/mac1.out" 2>&1 || { cat "$T/mac1.out"; fail "macs enrollment"; }
openssl x509 -in "$T/mac1.pem" -noout -subject -issuer -ext subjectAltName,extendedKeyUsage >"$T/mac1.txt"
grep -q "CN *= *C02CORP00001" "$T/mac1.txt" || { cat "$T/mac1.txt"; fail "macs subject CN"; }
grep -q "OU *= *Corp Macs" "$T/mac1.txt" || { cat "$T/mac1.txt"; fail "macs OU from the MDM blueprint"; }
grep -q "email:alice@example.com" "$T/mac1.txt" || { cat "$T/mac1.txt"; fail "email SAN from the MDM record"; }
grep -q "issuer=.*corp Issuing CA" "$T/mac1.txt" || { cat "$T/mac1.txt"; fail "macs issuer is not the corp CA"; }
grep -q "TLS Web Client Authentication" "$T/mac1.txt" || fail "macs EKU"
pass "MDM-known device admitted by role managed-mac; template uses MDM attributes; corp CA"

# --- refusals, each naming what failed
# Quotes from the MDM are escaped (\x22) in the policy's reason: client values never inject.
refused "unknown-serial" macs C02NOSUCH001 rejectedIdentifier 'kandji: no device with serial_number \x22C02NOSUCH001\x22 (no records)'
refused "partial-match" macs C02CORP0000 rejectedIdentifier '(2 records, none matched exactly)'
refused "failed-condition" macs C02UNMANAGED rejectedIdentifier 'condition mdm_enabled is_true failed'
refused "role-refuses" macs C02LAB000001 rejectedIdentifier 'role managed-mac'
grep -q 'Lab Macs' "$T/role-refuses.out" || fail "role refusal does not show the attribute value"
refused "mdm-down" down C02CORP00001 unauthorized 'kandjidown:'
grep -q 'on_failure: deny' "$T/mdm-down.out" || fail "MDM down: reason lacks on_failure"
mock _control '{"mode":"slow","delay":5}' >/dev/null
refused "mdm-slow" macs C02SLOW00001 unauthorized 'timed out after 2s'
mock _reset '' >/dev/null
mock _control '{"mode":"429"}' >/dev/null
refused "mdm-429" macs C02RATE00001 unauthorized 'HTTP 429 after 2 attempts (on_failure: deny)'
mock _reset '' >/dev/null

# --- second policy: other CA, other template
sim bulk C02CORP00002 --out "$T/bulk.pem" >"$T/bulk.out" 2>&1 || { cat "$T/bulk.out"; fail "bulk enrollment"; }
openssl x509 -in "$T/bulk.pem" -noout -issuer | grep -q "default Issuing CA" || fail "bulk issuer"
pass "policy bulk signs with the default CA (built-in shape)"

# --- manual approval: the device polls, an administrator approves / denies
sim ipads C02IPAD00001 --timeout 120 --out "$T/ipad1.pem" >"$T/ipad1.out" 2>&1 &
IPAD1=$!
sim ipads C02IPAD00002 --timeout 120 >"$T/ipad2.out" 2>&1 &
IPAD2=$!
for _ in $(seq 100); do
  "$ATTESTA_BIN" approve --list "${C[@]}" >"$T/list.out" 2>&1 || true
  grep -q C02IPAD00001 "$T/list.out" && grep -q C02IPAD00002 "$T/list.out" && break
  sleep 0.2
done
grep -q "serial=C02IPAD00001 *policy=ipads" "$T/list.out" || { cat "$T/list.out"; fail "approve --list lacks the held device"; }
pass "approve --list shows held devices"
"$ATTESTA_BIN" approve --serial C02IPAD00001 "${C[@]}" >"$T/approve.out" 2>&1 || { cat "$T/approve.out"; fail "attesta approve"; }
ID2=$(sed -n 's/^\([A-Za-z0-9_-]*\) .*serial=C02IPAD00002.*/\1/p' "$T/list.out")
"$ATTESTA_BIN" approve --deny "$ID2" --reason "not a company tablet" "${C[@]}" >"$T/deny.out" 2>&1 \
  || { cat "$T/deny.out"; fail "attesta approve --deny"; }
wait $IPAD1 || { cat "$T/ipad1.out"; fail "approved device got no certificate"; }
openssl x509 -in "$T/ipad1.pem" -noout -subject -issuer >"$T/ipad1.txt"
grep -q "CN *= *tablet C02IPAD00001" "$T/ipad1.txt" || { cat "$T/ipad1.txt"; fail "tablet template subject"; }
grep -q "O *= *Example Tablets" "$T/ipad1.txt" || fail "tablet template O"
grep -q "issuer=.*default Issuing CA" "$T/ipad1.txt" || fail "ipads issuer"
pass "manual approval: device polled, was approved and got the tablet template from the default CA"
set +e
wait $IPAD2
rc=$?
set -e
[ $rc -eq 1 ] && grep -q "not a company tablet" "$T/ipad2.out" \
  && grep -q "step=challenge .*type=rejectedIdentifier " "$T/ipad2.out" || { cat "$T/ipad2.out"; fail "denied device: exit $rc"; }
pass "manual denial reaches the device with the reason"

# --- supersede: the second certificate of a device revokes the first (supersede: revoke)
sim macs C02CORP00001 --out "$T/mac2.pem" >"$T/mac2.out" 2>&1 || { cat "$T/mac2.out"; fail "second macs enrollment"; }
S1=$(issued_serial "$T/mac1.out")
S2=$(issued_serial "$T/mac2.out")
[ -n "$S1" ] && [ -n "$S2" ] || fail "no serials printed"
row=$(sqlite3 "$T/data/attesta.db" "SELECT status || ' ' || data FROM records WHERE kind = 3 AND id = '$S1';")
case "$row" in revoked*'"revoked_reason":4'*'"superseded_by":"'$S2'"'*) ;; *) fail "first certificate not superseded/revoked: $row" ;; esac
sqlite3 "$T/data/attesta.db" "SELECT data FROM records WHERE kind = 3 AND id = '$S2';" | grep -q "\"supersedes\":\"$S1\"" \
  || fail "second certificate does not record what it supersedes"
pass "second enrollment supersedes and revokes the first (reason 4)"

# --- 100 concurrent enrollments of one serial: one MDM request
mock _reset '' >/dev/null
before=$(certs)
pids=()
for i in $(seq 100); do
  sim bulk C02CONC00001 --timeout 120 >"$T/conc.$i.out" 2>&1 &
  pids+=($!)
done
bad=0
for p in "${pids[@]}"; do wait "$p" || bad=$((bad + 1)); done
[ $bad -eq 0 ] || { cat "$T"/conc.*.out | grep -v "result: issued" | head -20; fail "$bad of 100 concurrent enrollments failed"; }
[ $(( $(certs) - before )) -eq 100 ] || fail "100 concurrent enrollments did not issue 100 certificates"
n=$(curl -sf "$M/_stats" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"].get("/api/v1/devices", 0))')
[ "$n" = 1 ] || fail "100 concurrent enrollments made $n MDM requests, want 1"
pass "100 concurrent enrollments of one serial: 100 certificates, 1 MDM request"

# --- audit: allowed and denied decisions with reasons
"$ATTESTA_BIN" audit --serial C02LAB000001 "${C[@]}" >"$T/audit-lab.out" || fail "attesta audit"
grep -q "denied  admission  device=C02LAB000001  policy=macs" "$T/audit-lab.out" || { cat "$T/audit-lab.out"; fail "audit lacks the denial"; }
grep -q "reason: .*role managed-mac" "$T/audit-lab.out" || fail "audit denial lacks the rule"
grep -q "source: *kandji allow (HTTP 200" "$T/audit-lab.out" || { cat "$T/audit-lab.out"; fail "audit lacks the source answer"; }
"$ATTESTA_BIN" audit --serial C02CORP00001 --since 1h "${C[@]}" >"$T/audit-mac.out" || fail "attesta audit --since"
grep -q "allowed  admission  device=C02CORP00001  policy=macs" "$T/audit-mac.out" || { cat "$T/audit-mac.out"; fail "audit lacks the admission"; }
grep -q "allowed  issuance .*policy=macs" "$T/audit-mac.out" || fail "audit lacks the issuance"
grep -q "certificate: $S2 (ca corp, template mac-wifi), supersedes $S1" "$T/audit-mac.out" || { cat "$T/audit-mac.out"; fail "audit issuance details"; }
grep -q "denied  admission  device=C02CORP00001  policy=down" "$T/audit-mac.out" || fail "audit lacks the MDM-down denial"
grep -q "denied  approval  device=C02IPAD00002" <("$ATTESTA_BIN" audit --serial C02IPAD00002 "${C[@]}") || fail "audit lacks the approval denial"
pass "attesta audit lists allowed and denied decisions with reasons"

grep -q "kandji-test-token-s3cr3t" "$T/attesta.log" "$T"/*.out && fail "the MDM token leaked into output"
stop_attesta
pass "policy integration done"
