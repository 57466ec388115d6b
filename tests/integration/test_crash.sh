#!/usr/bin/env bash
# Crash safety (test_crash.py): concurrent http-01 issuances, SIGKILL mid-flight at
# several moments, restart on the same data; issued certificates survive, no order
# stays processing, pre-kill nonces are refused.
. "$(dirname "$0")/lib.sh"
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import cryptography' 2>/dev/null \
  || { echo "skip: python3-cryptography missing"; exit 77; }
cd "$(dirname "$0")"

start_challtestsrv
TLS_PORT=$(free_port)
PORT=$(free_port)
write_config "$CT_HTTP_PORT" "$TLS_PORT" "  limits:
    orders_per_hour: 0"
sed -i "s/^  listen: .*/  listen: \"127.0.0.1:$PORT\"/" "$T/config.yaml"
/usr/bin/python3 test_crash.py "$ATTESTA_BIN" "$T/config.yaml" "$T/data" "$PORT" "$MGMT_PORT" "$T" \
  || { tail -n 40 "$T"/crash-*.log >&2; fail "crash safety"; }
