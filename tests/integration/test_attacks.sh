#!/usr/bin/env bash
# Attack suite (test_attacks.py): forged/damaged attestations, JWS tricks, other accounts
# and hostile input, against a server trusting a Python-made Apple-like root. Every
# attack is refused with its exact problem type and issues no certificate.
. "$(dirname "$0")/lib.sh"
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import cryptography' 2>/dev/null \
  || { echo "skip: python3-cryptography missing"; exit 77; }
cd "$(dirname "$0")"

DNS_PORT=$(free_port)
MGMT_PORT=0
/usr/bin/python3 test_attacks.py init "$T/apple" || fail "making the Apple-like CA"
# max_body above ATT_MAX_ATTOBJ so the attObj limit itself is reached
write_config 80 443 "  limits:
    orders_per_hour: 0
attestation:
  apple:
    roots: [\"$T/apple/root.pem\"]"
sed -i 's/^  workers: 2$/  workers: 2\n  limits:\n    max_body: 256k/' "$T/config.yaml"
start_attesta
/usr/bin/python3 test_attacks.py "$BASE" "$ROOT" "$T/apple" "$T/data/attesta.db" "$MGMT_PORT"
kill -0 "$ATTESTA_PID" || fail "server died during the attacks"
curl -sf --cacert "$ROOT" "$BASE/acme/default/directory" >/dev/null || fail "server stopped serving"
pass "server still serving after the attack suite"
