#!/usr/bin/env bash
# lego against the real server: a certificate by http-01, dns-01 and tls-alpn-01,
# then revocation. pebble-challtestsrv answers DNS (A records and dns-01 TXT).
. "$(dirname "$0")/lib.sh"
need lego

start_challtestsrv
HTTP_PORT=$(free_port); TLS_PORT=$(free_port)
write_config "$HTTP_PORT" "$TLS_PORT"
start_attesta

export LEGO_CA_CERTIFICATES="$ROOT"
LEGO=(lego --server "$BASE/acme/default/directory" --accept-tos --email it@example.com
      --path "$T/lego" --dns.resolvers "127.0.0.1:$DNS_PORT")

"${LEGO[@]}" --domains http.example.test --http --http.port "127.0.0.1:$HTTP_PORT" run \
  >"$T/lego-http.log" 2>&1 || { cat "$T/lego-http.log"; fail "lego http-01"; }
check_cert "$T/lego/certificates/http.example.test.crt" "DNS:http.example.test"
pass "lego http-01"

"${LEGO[@]}" --domains alpn.example.test --tls --tls.port "127.0.0.1:$TLS_PORT" run \
  >"$T/lego-tls.log" 2>&1 || { cat "$T/lego-tls.log"; fail "lego tls-alpn-01"; }
check_cert "$T/lego/certificates/alpn.example.test.crt" "DNS:alpn.example.test"
pass "lego tls-alpn-01"

# dns-01: lego's exec provider hands the TXT record to pebble-challtestsrv.
cat >"$T/dns-hook.sh" <<HOOK
#!/bin/sh
case "\$1" in
  present) curl -sf -d "{\"host\":\"\$2\",\"value\":\"\$3\"}" http://127.0.0.1:$MGMT_PORT/set-txt ;;
  cleanup) curl -sf -d "{\"host\":\"\$2\"}" http://127.0.0.1:$MGMT_PORT/clear-txt ;;
esac
HOOK
chmod +x "$T/dns-hook.sh"
EXEC_PATH="$T/dns-hook.sh" EXEC_PROPAGATION_TIMEOUT=10 EXEC_POLLING_INTERVAL=1 EXEC_SEQUENCE_INTERVAL=1 \
  "${LEGO[@]}" --domains dns.example.test --domains '*.wild.example.test' --dns exec --dns.disable-cp run \
  >"$T/lego-dns.log" 2>&1 || { cat "$T/lego-dns.log"; fail "lego dns-01"; }
check_cert "$T/lego/certificates/dns.example.test.crt" "DNS:\*.wild.example.test"
pass "lego dns-01 (with a wildcard)"

"${LEGO[@]}" --domains http.example.test revoke --keep --reason 4 >"$T/lego-revoke.log" 2>&1 \
  || { cat "$T/lego-revoke.log"; fail "lego revoke"; }
pass "lego revoke"

# Revoking twice is refused with alreadyRevoked.
if "${LEGO[@]}" --domains http.example.test revoke >"$T/lego-revoke2.log" 2>&1; then
  fail "second revocation accepted"
fi
grep -q alreadyRevoked "$T/lego-revoke2.log" || { cat "$T/lego-revoke2.log"; fail "no alreadyRevoked"; }
pass "lego second revoke refused (alreadyRevoked)"

stop_attesta
pass "graceful SIGTERM"
