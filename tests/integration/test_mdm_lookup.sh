#!/usr/bin/env bash
# Integration: the real `attesta mdm lookup` against the mock MDM
# (tests/mockmdm/mock_mdm.py) with Kandji, Jamf Pro, Intune, JumpCloud and
# Workspace ONE shaped sources, each with its own auth mode. Checks exit codes
# (0 allow, 1 deny, 2 usage/config), the printed verdicts and reasons, config
# errors with file:line, and that no secret ever appears in any output.
# Needs ATTESTA_BIN; skips (77) without python3.
set -u
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
[ -x "$PY" ] || { echo "SKIP: $PY missing"; exit 77; }
[ -n "${ATTESTA_BIN:-}" ] && [ -x "$ATTESTA_BIN" ] || { echo "SKIP: ATTESTA_BIN not set"; exit 77; }

TMP=$(mktemp -d /tmp/attesta-mdm-it.XXXXXX)
MOCK_PID=
cleanup() {
    [ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null && wait "$MOCK_PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

"$PY" "$ROOT/tests/mockmdm/mock_mdm.py" 0 "$ROOT/tests/fixtures/mdm/devices.json" >"$TMP/port" &
MOCK_PID=$!
for _ in $(seq 50); do [ -s "$TMP/port" ] && break; sleep 0.1; done
PORT=$(head -n1 "$TMP/port")
[ -n "$PORT" ] || { echo "FAIL: mock MDM did not start"; exit 1; }
M="http://127.0.0.1:$PORT"

# Secrets: only in the environment or a 0600 file, never in the config.
SECRETS="kandji-test-token-s3cr3t jamf-secret-s3cr3t intune-secret-s3cr3t jumpcloud-key-s3cr3t ws1-pass-s3cr3t"
export IT_KANDJI_TOKEN=kandji-test-token-s3cr3t
export IT_INTUNE_SECRET=intune-secret-s3cr3t
export IT_JUMPCLOUD_KEY=jumpcloud-key-s3cr3t
export IT_WS1_PASSWORD=ws1-pass-s3cr3t
umask 077
printf 'jamf-secret-s3cr3t\n' >"$TMP/jamf.secret"

cat >"$TMP/config.yaml" <<EOF
signal_sources:
  kandji:
    type: http
    request: {url: "$M/api/v1/devices?serial_number=\${/attest/serial|urlencode}"}
    auth: {type: bearer, token_env: IT_KANDJI_TOKEN}
    records: "\$"
    match: {field: serial_number, equals: "\${/attest/serial}"}
    conditions: [{path: mdm_enabled, op: is_true}, {path: is_removed, op: equals, value: false}]
    attributes: {user_email: user.email, blueprint: blueprint_name}
  jamf:
    type: http
    request: {url: "$M/api/v2/computers-inventory?filter=hardware.serialNumber%3D%3D%22\${/attest/serial|urlencode}%22"}
    auth: {type: oauth2_client_credentials, token_url: "$M/api/oauth/token",
           client_id: jamf-client, client_secret_file: $TMP/jamf.secret}
    records: results
    match: {field: hardware.serialNumber}
    conditions: [{path: general.remoteManagement.managed, op: is_true}]
    attributes: {email: userAndLocation.email}
    max_concurrency: 5
  intune:
    type: http
    request: {url: "$M/v1.0/deviceManagement/managedDevices?\$filter=serialNumber%20eq%20'\${/attest/serial|urlencode}'"}
    auth: {type: oauth2_client_credentials, token_url: "$M/tenant-id/oauth2/v2.0/token",
           client_id: intune-client, client_secret_env: IT_INTUNE_SECRET,
           scope: "https://graph.microsoft.com/.default"}
    records: value
    match: {field: serialNumber}
    conditions: [{path: complianceState, op: in, value: [compliant, inGracePeriod]}]
    attributes: {upn: userPrincipalName}
  jumpcloud:
    type: http
    request: {url: "$M/api/systems?filter=serialNumber:\$eq:\${/attest/serial|urlencode}"}
    auth: {type: header, header: x-api-key, value_env: IT_JUMPCLOUD_KEY}
    match: {field: serialNumber}
    conditions: [{path: enrolled, op: is_true}]
  ws1:
    type: http
    request:
      url: "$M/API/mdm/devices?searchby=Serialnumber&id=\${/attest/serial|urlencode}"
      headers: {aw-tenant-code: ws1-tenant-s3cr3t, Accept: "application/json;version=1"}
    auth: {type: basic, username: ws1api, password_env: IT_WS1_PASSWORD}
    records: "\$"
    match: {field: SerialNumber}
    conditions: [{path: EnrollmentStatus, op: equals, value: Enrolled}]
    attributes: {email: UserEmailAddress}
enrollment_policies:
  macs:
    identifiers: [permanent-identifier, hardware-module]
    challenges: [device-attest-01]
    signal_sources: [kandji, jamf]
EOF

FAILS=0
N=0
# run NAME WANT_EXIT PATTERN ARGS...: runs attesta, checks the exit code and a pattern.
run() {
    local name=$1 want=$2 pat=$3
    shift 3
    N=$((N + 1))
    "$ATTESTA_BIN" "$@" >"$TMP/out.$N" 2>&1
    local rc=$?
    if [ "$rc" != "$want" ] || ! grep -qF -- "$pat" "$TMP/out.$N"; then
        echo "FAIL: $name: exit $rc (want $want), pattern '$pat'"
        sed 's/^/    /' "$TMP/out.$N"
        FAILS=$((FAILS + 1))
    else
        echo "ok: $name"
    fi
}
C=(-c "$TMP/config.yaml")
run "kandji found" 0 "verdict:     allow" mdm lookup kandji C02ABC123XYZ "${C[@]}"
run "kandji attribute" 0 "user_email = alice@example.com" mdm lookup kandji C02ABC123XYZ "${C[@]}"
run "kandji partial refused" 1 'no device with serial_number "C02ABC123" (2 records, none matched exactly)' \
    mdm lookup kandji C02ABC123 "${C[@]}"
run "kandji unmanaged" 1 "condition mdm_enabled is_true failed (value false)" \
    mdm lookup kandji C02UNMANAGED1 "${C[@]}"
run "jamf found" 0 "pass  general.remoteManagement.managed is_true (value true)" \
    mdm lookup jamf C02ABC123XYZ "${C[@]}"
run "jamf unknown" 1 "(no records)" mdm lookup jamf NOSUCHSERIAL "${C[@]}"
run "intune found" 0 "upn = alice@example.com" mdm lookup intune C02ABC123XYZ "${C[@]}"
run "intune noncompliant" 1 "condition complianceState in [compliant, inGracePeriod] failed (value noncompliant)" \
    mdm lookup intune C02UNMANAGED1 "${C[@]}"
run "jumpcloud found" 0 "verdict:     allow" mdm lookup jumpcloud C02ABC123XYZ9 "${C[@]}"
run "jumpcloud unenrolled" 1 "condition enrolled is_true failed" mdm lookup jumpcloud C02UNMANAGED1 "${C[@]}"
run "ws1 found" 0 "email = alice@example.com" mdm lookup ws1 C02ABC123XYZ "${C[@]}"
run "ws1 not found (404)" 1 "(HTTP 404)" mdm lookup ws1 NOSUCHSERIAL "${C[@]}"
run "unknown source" 2 "no signal source named" mdm lookup nosuch C02ABC123XYZ "${C[@]}"
run "usage" 2 "usage:" mdm lookup kandji
"$PY" - "$M" <<'PYEOF'
import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1] + "/_control", data=b'{"mode":"500"}'))
PYEOF
run "500 deny" 1 "kandji: HTTP 500 after 3 attempts (on_failure: deny)" mdm lookup kandji C02ABC123XYZ "${C[@]}"
"$PY" -c "import urllib.request; urllib.request.urlopen(urllib.request.Request('$M/_reset', data=b''))"

unset IT_KANDJI_TOKEN
run "missing env" 2 "signal_sources.kandji.auth.token_env: environment variable IT_KANDJI_TOKEN is not set" \
    mdm lookup kandji C02ABC123XYZ "${C[@]}"
export IT_KANDJI_TOKEN=kandji-test-token-s3cr3t

sed 's#serial_number=\${/attest/serial|urlencode}#serial_number=${/attest/serail}#' "$TMP/config.yaml" >"$TMP/bad.yaml"
run "unknown variable" 2 "bad.yaml:4: signal_sources.kandji.request.url: unknown variable \${/attest/serail}" \
    mdm lookup kandji C02ABC123XYZ -c "$TMP/bad.yaml"
sed 's|type: bearer|type: token|' "$TMP/config.yaml" >"$TMP/bad2.yaml"
run "bad auth type" 2 "bad2.yaml:5: signal_sources.kandji.auth.type: expected one of none|bearer|basic|header|oauth2_client_credentials" \
    mdm lookup kandji C02ABC123XYZ -c "$TMP/bad2.yaml"
sed 's|signal_sources: \[kandji, jamf\]|signal_sources: [kandji, jamff]|' "$TMP/config.yaml" >"$TMP/bad3.yaml"
run "unknown source in policy" 2 'signal_sources[1]: unknown signal source "jamff"' \
    mdm lookup kandji C02ABC123XYZ -c "$TMP/bad3.yaml"

for s in $SECRETS; do
    if grep -lF -- "$s" "$TMP"/out.* >/dev/null 2>&1; then
        echo "FAIL: secret $s appears in output: $(grep -lF -- "$s" "$TMP"/out.*)"
        FAILS=$((FAILS + 1))
    fi
done
echo "$((N - FAILS))/$N checks passed"
[ "$FAILS" -eq 0 ]
