#!/usr/bin/env bash
# The SecureW2 "Dynamic ACME DA" + Kandji setup exactly as docs/policy.md shows it, as one
# YAML file: the example is cut out of the documentation, pointed at the mock MDM and the
# simulator's Apple-like root, and must enroll a managed Corp Mac (certificate shaped by
# the template from MDM attributes, issued by the dedicated intermediate) and refuse a Lab
# Mac and an unknown serial, each naming the rule that failed.
. "$(dirname "$0")/lib.sh"
: "${SIM_BIN:?SIM_BIN must point at attesta-device-sim}"
[ -x /usr/bin/python3 ] || { echo "skip: python3 missing"; exit 77; }
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)

cat >"$T/devices.json" <<'JSON'
{"devices": [
  {"serial": "C02CORPMAC01", "udid": "00008103-0000000000AA0001", "blueprint": "Corp Macs", "email": "alice@example.com"},
  {"serial": "C02LABMAC001", "udid": "00008103-0000000000AA0002", "blueprint": "Lab Macs", "email": "bob@example.com"}
]}
JSON
/usr/bin/python3 "$SRC/tests/mockmdm/mock_mdm.py" 0 "$T/devices.json" >"$T/mock.port" 2>"$T/mock.log" &
PIDS+=($!)
for _ in $(seq 50); do [ -s "$T/mock.port" ] && break; sleep 0.1; done
M="http://127.0.0.1:$(head -n1 "$T/mock.port")"
export KANDJI_TOKEN=kandji-test-token-s3cr3t

# The documented file, verbatim but for where Kandji and the CA files live.
awk '/^## Example: SecureW2/ {on=1} on && /^```yaml/ {grab=1; next} grab && /^```/ {exit} grab' \
  "$SRC/docs/policy.md" >"$T/securew2.yaml"
grep -q "kandji-acme" "$T/securew2.yaml" || fail "example not found in docs/policy.md"
sed -i "s#https://example.api.kandji.io#$M#" "$T/securew2.yaml"
"$ATTESTA_BIN" ca init --dir "$T/ca-src" --name kandji-acme >/dev/null 2>&1 || fail "ca init"
mkdir -p "$T/ca"
cp "$T/ca-src/intermediate.pem" "$T/ca/kandji-acme.pem"
cp -p "$T/ca-src/intermediate.key" "$T/ca/kandji-acme.key"
cp "$T/ca-src/root.pem" "$T/ca/root.pem"
sed -i "s#cert: ca/#cert: $T/ca/#; s#key: ca/#key: $T/ca/#; s#chain: ca/#chain: $T/ca/#" "$T/securew2.yaml"

DNS_PORT=$(free_port)
"$SIM_BIN" ca-init --apple-ca "$T/apple" >/dev/null || fail "sim ca-init"
write_config 80 443 "attestation:
  apple:
    roots: [\"$T/apple/apple-root.pem\"]
$(cat "$T/securew2.yaml")"
"$ATTESTA_BIN" config check "$T/config.yaml" >/dev/null || fail "the documented example does not load"
# With kandji-acme as the only CA, it also signs the HTTPS listener's certificate.
ATTESTA_ROOT="$T/ca/root.pem" start_attesta
DIR="$BASE/acme/kandji/directory"
sim() { "$SIM_BIN" enroll --directory "$DIR" --trust "$ROOT" --apple-ca "$T/apple" "$@"; }

sim --serial C02CORPMAC01 --udid 00008103-0000000000AA0001 --os-version 15.1 --out "$T/corp.pem" \
  >"$T/corp.out" 2>&1 || { cat "$T/corp.out"; fail "managed Corp Mac refused"; }
openssl x509 -in "$T/corp.pem" -noout -subject -issuer -ext subjectAltName >"$T/corp.txt"
grep -q "OU *= *Corp Macs" "$T/corp.txt" || { cat "$T/corp.txt"; fail "OU is not the Kandji blueprint"; }
grep -q "O *= *Example Corp" "$T/corp.txt" || fail "O from the template missing"
grep -q "email:alice@example.com" "$T/corp.txt" || fail "email SAN from Kandji missing"
issuer_cn=$(openssl x509 -in "$T/ca/kandji-acme.pem" -noout -subject | sed 's/.*CN *= *//')
grep -q "issuer=.*$issuer_cn" "$T/corp.txt" || fail "not issued by the kandji-acme intermediate"
openssl verify -CAfile "$T/ca/root.pem" -untrusted "$T/ca/kandji-acme.pem" "$T/corp.pem" >/dev/null \
  || fail "certificate does not chain to the kandji-acme root"
pass "documented SecureW2+Kandji setup: managed Corp Mac enrolls (OU, email from Kandji)"

set +e
sim --serial C02LABMAC001 --udid 00008103-0000000000AA0002 --os-version 15.1 >"$T/lab.out" 2>&1
rc=$?
set -e
[ $rc -eq 1 ] && grep -q "role managed-mac" "$T/lab.out" && grep -q "Lab Macs" "$T/lab.out" \
  && grep -q "step=challenge .*type=rejectedIdentifier " "$T/lab.out" \
  || { cat "$T/lab.out"; fail "Lab Mac not refused by the role rule"; }
pass "Lab Mac refused, detail names role managed-mac and the blueprint"

set +e
sim --serial C02OLDMAC001 --udid 00008103-0000000000AA0003 --os-version 15.1 >"$T/unknown.out" 2>&1
rc=$?
sim --serial C02CORPMAC01 --udid 00008103-0000000000AA0001 --os-version 13.6 >"$T/old.out" 2>&1
rc_old=$?
set -e
[ $rc -eq 1 ] && grep -q "kandji" "$T/unknown.out" \
  && grep -q "step=challenge .*type=rejectedIdentifier " "$T/unknown.out" || { cat "$T/unknown.out"; fail "unknown serial not refused by kandji"; }
pass "serial unknown to Kandji refused, detail names the source"
[ $rc_old -eq 1 ] && grep -q "os_version" "$T/old.out" || { cat "$T/old.out"; fail "macOS 13.6 not refused"; }
pass "device below the role's minimum OS version refused"
