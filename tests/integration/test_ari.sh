#!/usr/bin/env bash
# ACME Renewal Information (test_ari.py): renewalInfo and newOrder `replaces`, racing
# renewals included, against the real server on SQLite, then on PostgreSQL when its
# binaries are installed (the certificate's conditional update rides in the order's commit
# in both dialects). Debian's lego 4.9.1 and certbot 2.1.0 send no `replaces` yet.
. "$(dirname "$0")/lib.sh"
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import cryptography' 2>/dev/null \
  || { echo "skip: python3-cryptography missing"; exit 77; }

start_challtestsrv
TLS_PORT=$(free_port)
MAIN_T=$T
for store in sqlite postgres; do
  if [ "$store" = postgres ]; then
    [ -n "$(pg_bin)" ] || { echo "# PostgreSQL binaries not installed: that run is skipped"; break; }
    start_postgres
    T=$MAIN_T/pg-server
  fi
  write_config "$CT_HTTP_PORT" "$TLS_PORT"
  if [ "$store" = postgres ]; then use_postgres; fi
  start_attesta
  (cd "$(dirname "$0")" && /usr/bin/python3 test_ari.py "$BASE" "$ROOT" "$MGMT_PORT") \
    || fail "suite on $store"
  pass "renewalInfo and replaces on $store"
done
T=$MAIN_T
