#!/usr/bin/env bash
# device-attest-01 end to end: attesta-device-sim enrolls like an Apple device through
# /acme/devices/directory with an Apple-like test CA the server is told to trust; every
# injected failure is refused with its problem type and issues nothing.
. "$(dirname "$0")/lib.sh"
: "${SIM_BIN:?SIM_BIN must point at attesta-device-sim}"
command -v sqlite3 >/dev/null || { echo "skip: sqlite3 missing"; exit 77; }

DNS_PORT=$(free_port)   # no DNS needed: device-attest-01 makes no outbound lookups
"$SIM_BIN" ca-init --apple-ca "$T/apple" >/dev/null || fail "sim ca-init"
write_config 80 443 "attestation:
  apple:
    roots: [\"$T/apple/apple-root.pem\"]"
start_attesta
DIR="$BASE/acme/devices/directory"

certs() { sqlite3 "$T/data/attesta.db" "SELECT count(*) FROM records WHERE kind = 3;"; }
sim() { "$SIM_BIN" enroll --directory "$DIR" --trust "$ROOT" --apple-ca "$T/apple" "$@"; }
# device_san PEM pid|hwm SERIAL [OID]: the certificate's only SAN is a permanentIdentifier
# {UTF8String SERIAL [, assigner OID]} (pid) or a HardwareModuleName {hwType OID, hwSerialNum
# SERIAL} (hwm) (DA-4, DA-5), decoded from the DER rather than from `openssl x509 -text`,
# which prints HardwareModuleName as "<unsupported>" and leaves out the assigner.
device_san() {
  /usr/bin/python3 - "$@" <<'PY'
import sys
from cryptography import x509
pem, kind, serial = sys.argv[1], sys.argv[2], sys.argv[3].encode()
oid = sys.argv[4] if len(sys.argv) > 4 else None
cert = x509.load_pem_x509_certificate(open(pem, "rb").read())
names = list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
assert len(names) == 1 and isinstance(names[0], x509.OtherName), names
want = {"hwm": "1.3.6.1.5.5.7.8.4", "pid": "1.3.6.1.5.5.7.8.3"}[kind]
assert names[0].type_id.dotted_string == want, names[0].type_id

def tlv(b, i):
    tag, n, i = b[i], b[i + 1], i + 2
    if n & 0x80:
        k = n & 0x7F
        n, i = int.from_bytes(b[i:i + k], "big"), i + k
    return tag, b[i:i + n], i + n

def oid_text(c):
    arcs, v = [], 0
    for x in c:
        v = (v << 7) | (x & 0x7F)
        if not x & 0x80:
            arcs.append(v)
            v = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first] + arcs[1:])

tag, seq, end = tlv(names[0].value, 0)
assert tag == 0x30 and end == len(names[0].value), names[0].value
items, i = [], 0
while i < len(seq):
    t, c, i = tlv(seq, i)
    items.append((t, c))
if kind == "hwm":
    assert [t for t, _ in items] == [0x06, 0x04], items
    assert oid_text(items[0][1]) == oid, oid_text(items[0][1])
    assert items[1][1] == serial, items[1][1]
else:
    assert [t for t, _ in items] == [0x0C] + ([0x06] if oid else []), items
    assert items[0][1] == serial, items[0][1]
    assert oid is None or oid_text(items[1][1]) == oid, oid_text(items[1][1])
PY
}

sim --serial C02XK0SIMUL8 --udid 00008103-001A2B3C4D5E6F70 --out "$T/dev.pem" >"$T/ok.out" 2>&1 \
  || { cat "$T/ok.out"; fail "device enrollment"; }
grep -q "result: issued" "$T/ok.out" || fail "no issued line"
openssl x509 -in "$T/dev.pem" -noout -text >"$T/dev.txt"
grep -q "TLS Web Client Authentication" "$T/dev.txt" || fail "device cert lacks clientAuth"
openssl asn1parse -in "$T/dev.pem" >"$T/dev.asn1"
grep -q "C02XK0SIMUL8" "$T/dev.asn1" || fail "device cert lacks the serial"
grep -q "1.3.6.1.5.5.7.8.3\|permanentIdentifier\|Permanent Identifier" "$T/dev.txt" "$T/dev.asn1" \
  || fail "device cert lacks the permanent-identifier SAN"
device_san "$T/dev.pem" pid C02XK0SIMUL8 \
  || fail "device cert SAN is not permanentIdentifier {C02XK0SIMUL8} without assigner"
pass "simulated device enrolls (serial identifier, P-384 key)"

# DA-5: a hardware-module order gets a HardwareModuleName SAN, not a permanentIdentifier.
sim --serial C02XK0HWMOD1 --udid 00008103-0000000000000003 --identifier-type hardware-module \
  --identifier C02XK0HWMOD1/1.3.6.1.4.1.99999.1 --out "$T/hwm.pem" >"$T/hwm.out" 2>&1 \
  || { cat "$T/hwm.out"; fail "hardware-module enrollment"; }
device_san "$T/hwm.pem" hwm C02XK0HWMOD1 1.3.6.1.4.1.99999.1 \
  || fail "hardware-module cert SAN is not HardwareModuleName {1.3.6.1.4.1.99999.1, C02XK0HWMOD1}"
pass "hardware-module enrollment: HardwareModuleName SAN with the ordered type and serial"

# DA-4: "SERIAL/assigner-OID" is attested by its serial part alone (DA-14) and the
# certificate's PermanentIdentifier carries both parts.
APPLE_OID=1.2.840.113635.100.6.1.1
sim --serial C02XK0ASSGN1 --udid 00008103-0000000000000004 --identifier "C02XK0ASSGN1/$APPLE_OID" \
  --out "$T/pid.pem" >"$T/pid.out" 2>&1 || { cat "$T/pid.out"; fail "enrollment with an assigner"; }
device_san "$T/pid.pem" pid C02XK0ASSGN1 "$APPLE_OID" \
  || fail "cert SAN is not permanentIdentifier {C02XK0ASSGN1, $APPLE_OID}"
base=$(certs)
set +e
sim --serial C02XK0ASSGN2 --udid 00008103-0000000000000005 --identifier "C02XK0OTHER2/$APPLE_OID" \
  >"$T/pid-other.out" 2>&1
rc=$?
set -e
[ $rc -eq 1 ] && grep -q "type=badAttestationStatement " "$T/pid-other.out" \
  || { cat "$T/pid-other.out"; fail "another serial before the assigner: exit $rc"; }
[ "$(certs)" = "$base" ] || fail "another serial before the assigner: a certificate was issued"
pass "permanent-identifier with an assigner: serial part attested, PermanentIdentifier has both"

sim --serial C02XK0SIMUL9 --udid 00008103-0000000000000001 --identifier udid --key p256 \
  >"$T/udid.out" 2>&1 || { cat "$T/udid.out"; fail "UDID enrollment"; }
pass "simulated device enrolls (UDID identifier, P-256 key)"

sim --serial C02XK0SHORTS --udid 00008103-0000000000000002 --fault short-sig >"$T/short.out" 2>&1 \
  || { cat "$T/short.out"; fail "63-byte ES256 signatures refused"; }
pass "63-byte ES256 signatures accepted (Apple quirk)"

base=$(certs)
while read -r fault want; do
  set +e
  sim --serial C02XKFAULT01 --udid 00008103-00000000000000FF --fault "$fault" >"$T/$fault.out" 2>&1
  rc=$?
  set -e
  [ $rc -eq 1 ] || { cat "$T/$fault.out"; fail "$fault: exit $rc, want 1 (refused)"; }
  grep -q "type=$want " "$T/$fault.out" || { cat "$T/$fault.out"; fail "$fault: want $want"; }
  [ "$(certs)" = "$base" ] || fail "$fault: a certificate was issued"
  pass "$fault refused with $want"
done <<'FAULTS'
wrong-nonce badAttestationStatement
no-nonce badAttestationStatement
other-serial badAttestationStatement
untrusted-root badAttestationStatement
expired-leaf badAttestationStatement
not-yet-valid badAttestationStatement
truncated-cbor badAttestationStatement
garbage-cbor badAttestationStatement
error-member badAttestationStatement
csr-other-key badCSR
FAULTS

# A device order on the default (dns/ip) directory is refused.
set +e
"$SIM_BIN" enroll --directory "$BASE/acme/default/directory" --trust "$ROOT" --apple-ca "$T/apple" \
  --serial C02XK0SIMUL8 >"$T/wrongdir.out" 2>&1
rc=$?
set -e
[ $rc -eq 1 ] && grep -q "step=newOrder" "$T/wrongdir.out" || { cat "$T/wrongdir.out"; fail "permanent-identifier accepted on the default directory"; }
pass "permanent-identifier refused on the dns/ip directory"

# The mobileconfig for the devices policy parses with a real plist parser.
"$ATTESTA_BIN" profile --policy devices -c "$T/config.yaml" --out "$T/devices.mobileconfig" \
  || fail "attesta profile"
/usr/bin/python3 - "$T/devices.mobileconfig" <<'PY' || fail "profile does not parse or lacks keys"
import plistlib, sys
p = plistlib.load(open(sys.argv[1], "rb"))
root, acme = p["PayloadContent"]
assert root["PayloadType"] == "com.apple.security.root" and len(root["PayloadContent"]) > 100
assert acme["PayloadType"] == "com.apple.security.acme"
assert acme["DirectoryURL"].endswith("/acme/devices/directory")
assert acme["HardwareBound"] is True and acme["Attest"] is True
assert acme["KeyType"] == "ECSECPrimeRandom" and acme["KeySize"] == 384
assert acme["ClientIdentifier"] == "$SERIALNUMBER"
assert acme["ExtendedKeyUsage"] == ["1.3.6.1.5.5.7.3.2"]
PY
pass "attesta profile writes a valid .mobileconfig"
