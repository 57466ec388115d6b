#!/usr/bin/env bash
# Configured limits (test_limits.py): body, header block, JSON depth, identifiers per
# order, orders per account per hour, new accounts per address, connections per address
# and the read deadline for slow clients. The values here must match the constants at the
# top of the .py.
. "$(dirname "$0")/lib.sh"
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import cryptography' 2>/dev/null \
  || { echo "skip: python3-cryptography missing"; exit 77; }
cd "$(dirname "$0")"

DNS_PORT=$(free_port)
write_config 80 443 "  limits:
    max_identifiers: 3
    orders_per_hour: 3
    accounts_per_ip_hour: 8
    max_json_depth: 8"
sed -i 's/^  workers: 2$/  workers: 2\n  limits:\n    max_body: 8k\n    max_headers: 4k\n    max_conns_per_ip: 6\n  timeouts:\n    read: 2s\n    idle: 2s/' \
  "$T/config.yaml"
start_attesta
/usr/bin/python3 test_limits.py "$BASE" "$ROOT" "$PORT"
kill -0 "$ATTESTA_PID" || fail "server died"
curl -sf --cacert "$ROOT" "$BASE/acme/default/directory" >/dev/null || fail "server stopped serving"
stop_attesta
pass "limits hold and the server stops cleanly"
