#!/usr/bin/env bash
# certbot against the real server: standalone http-01, then revoke.
. "$(dirname "$0")/lib.sh"
need certbot

start_challtestsrv
HTTP_PORT=$(free_port); TLS_PORT=$(free_port)
write_config "$HTTP_PORT" "$TLS_PORT"
start_attesta

export REQUESTS_CA_BUNDLE="$ROOT"
CB=(certbot --server "$BASE/acme/default/directory" --config-dir "$T/cb/config"
    --work-dir "$T/cb/work" --logs-dir "$T/cb/logs" -n --agree-tos
    --register-unsafely-without-email)

"${CB[@]}" certonly --standalone --http-01-address 127.0.0.1 --http-01-port "$HTTP_PORT" \
  -d certbot.example.test >"$T/certbot.log" 2>&1 || { cat "$T/certbot.log"; fail "certbot certonly"; }
CERT="$T/cb/config/live/certbot.example.test/fullchain.pem"
check_cert "$CERT" "DNS:certbot.example.test"
pass "certbot http-01"

"${CB[@]}" revoke --cert-path "$CERT" --reason keycompromise --no-delete-after-revoke \
  >"$T/certbot-revoke.log" 2>&1 || { cat "$T/certbot-revoke.log"; fail "certbot revoke"; }
pass "certbot revoke"

"${CB[@]}" unregister >"$T/certbot-unreg.log" 2>&1 || { cat "$T/certbot-unreg.log"; fail "certbot unregister"; }
pass "certbot account deactivation"
