#!/usr/bin/env bash
# Authorization reuse and the paged orders list (test_orders.py) against the real server on
# SQLite, with a second server configured with acme.authz_reuse: false; then the same suite
# on PostgreSQL (the keyset query and the reuse lookup run in both dialects) when its
# binaries are installed.
. "$(dirname "$0")/lib.sh"
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import cryptography' 2>/dev/null \
  || { echo "skip: python3-cryptography missing"; exit 77; }

start_challtestsrv
TLS_PORT=$(free_port)
write_config "$CT_HTTP_PORT" "$TLS_PORT"
start_attesta
MAIN_T=$T MAIN_BASE=$BASE MAIN_ROOT=$ROOT
T=$MAIN_T/noreuse
write_config "$CT_HTTP_PORT" "$TLS_PORT" "  authz_reuse: false"
start_attesta
NOREUSE_BASE=$BASE NOREUSE_ROOT=$ROOT
T=$MAIN_T

cd "$(dirname "$0")"
/usr/bin/python3 test_orders.py "$MAIN_BASE" "$MAIN_ROOT" "$MGMT_PORT" "$NOREUSE_BASE" "$NOREUSE_ROOT" \
  || fail "suite on SQLite"
pass "authorization reuse and orders list pages on SQLite"

if [ -z "$(pg_bin)" ]; then
  echo "# PostgreSQL binaries not installed: the PostgreSQL run is skipped"
  exit 0
fi
start_postgres
T=$MAIN_T/pg-server
write_config "$CT_HTTP_PORT" "$TLS_PORT"
use_postgres
start_attesta
/usr/bin/python3 test_orders.py "$BASE" "$ROOT" "$MGMT_PORT" || fail "suite on PostgreSQL"
T=$MAIN_T
pass "authorization reuse and orders list pages on PostgreSQL"
