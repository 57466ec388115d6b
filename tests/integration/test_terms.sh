#!/usr/bin/env bash
# Terms of service changes (A-10, RFC 8555 §7.3.3) across SIGHUP reloads (test_terms.py): an
# account agrees to terms v1; terms v2 alone lock nobody out; a file with
# terms_of_service_reagree but no terms is refused with FILE:LINE; v2 with reagree refuses the
# account's newOrder, finalize and challenge response (403 userActionRequired, Link
# rel="terms-of-service", instance) until it agrees again by account update.
. "$(dirname "$0")/lib.sh"
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import cryptography' 2>/dev/null \
  || { echo "skip: python3-cryptography missing"; exit 77; }

# Nothing gets validated: no challenge server, only ports for the config.
DNS_PORT=$(free_port); HTTP_PORT=$(free_port); TLS_PORT=$(free_port)
config() { # config NAME META_LINES: $T/NAME.yaml with that acme.meta
  write_config "$HTTP_PORT" "$TLS_PORT" "  meta:
$2"
  cp "$T/config.yaml" "$T/$1.yaml"
}
config broken "    terms_of_service_reagree: true"
config v2-reagree "    terms_of_service: https://ca.test/terms/v2
    terms_of_service_reagree: true
    terms_of_service_instance: https://ca.test/agree"
config v2 "    terms_of_service: https://ca.test/terms/v2"
config v1 "    terms_of_service: https://ca.test/terms/v1"
start_attesta

cd "$(dirname "$0")"
/usr/bin/python3 test_terms.py "$BASE" "$ROOT" "$T" "$ATTESTA_PID" || fail "terms suite"
pass "terms of service changes and re-agreement"
stop_attesta
