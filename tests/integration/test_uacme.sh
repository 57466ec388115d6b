#!/usr/bin/env bash
# uacme against the real server: account, http-01 via pebble-challtestsrv, account key
# change (newkey), revoke. uacme uses GnuTLS with the system trust store only, so it
# runs in a private mount namespace where that store is our dev root.
. "$(dirname "$0")/lib.sh"
need uacme
command -v unshare >/dev/null || { echo "skip: unshare missing"; exit 77; }

start_challtestsrv
TLS_PORT=$(free_port)
write_config "$CT_HTTP_PORT" "$TLS_PORT"
start_attesta

cat >"$T/hook.sh" <<HOOK
#!/bin/sh
# uacme hook: METHOD TYPE IDENT TOKEN AUTH; only http-01 is served.
[ "\$2" = "http-01" ] || exit 1
case "\$1" in
  begin) curl -sf -d "{\"token\":\"\$4\",\"content\":\"\$5\"}" http://127.0.0.1:$MGMT_PORT/add-http01 ;;
  *) curl -sf -d "{\"token\":\"\$4\"}" http://127.0.0.1:$MGMT_PORT/del-http01 ;;
esac
HOOK
chmod +x "$T/hook.sh"

uacme_run() {
  unshare -m sh -c 'mount --bind "$0" /etc/ssl/certs/ca-certificates.crt && shift && exec "$@"' \
    "$ROOT" -- uacme -v -c "$T/uacme" -a "$BASE/acme/default/directory" -y "$@"
}

uacme_run new it@example.com >"$T/u-new.log" 2>&1 || { cat "$T/u-new.log"; fail "uacme new account"; }
pass "uacme new account"
uacme_run -h "$T/hook.sh" issue uacme.example.test >"$T/u-issue.log" 2>&1 \
  || { cat "$T/u-issue.log"; fail "uacme issue"; }
CERT="$T/uacme/uacme.example.test/cert.pem"
check_cert "$CERT" "DNS:uacme.example.test"
pass "uacme http-01"
uacme_run newkey >"$T/u-newkey.log" 2>&1 || { cat "$T/u-newkey.log"; fail "uacme newkey"; }
pass "uacme key change"
uacme_run revoke "$CERT" >"$T/u-revoke.log" 2>&1 || { cat "$T/u-revoke.log"; fail "uacme revoke"; }
pass "uacme revoke with the new account key"
uacme_run deactivate >"$T/u-deact.log" 2>&1 || { cat "$T/u-deact.log"; fail "uacme deactivate"; }
pass "uacme account deactivation"
