#!/usr/bin/env bash
# CH-4/CH-5 (test_chall_retry.py): a validation that the server retries keeps its
# challenge `processing`, shows the failed try's problem as `error` and sends
# Retry-After up to the next try; it ends valid once the answer appears, invalid
# with the final problem when every try fails. Then CH-6 with retry_delay 10s: a
# client's re-POST while a retry waits runs it at once, once per gap.
. "$(dirname "$0")/lib.sh"
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import cryptography' 2>/dev/null \
  || { echo "skip: python3-cryptography missing"; exit 77; }

RETRY_DELAY=2   # long enough to look between tries even in a sanitized build
start_challtestsrv
TLS_PORT=$(free_port)
write_config "$CT_HTTP_PORT" "$TLS_PORT"
sed -i -e 's/^    attempts: .*/    attempts: 3/' -e "s/^    retry_delay: .*/    retry_delay: $RETRY_DELAY/" \
  "$T/config.yaml"
grep -q '^    attempts: 3$' "$T/config.yaml" || fail "attempts not set"
start_attesta

cd "$(dirname "$0")"
/usr/bin/python3 test_chall_retry.py "$BASE" "$ROOT" "$MGMT_PORT" "$RETRY_DELAY"
grep -q "try 1 failed, retrying in ${RETRY_DELAY}s" "$T/attesta.log" || fail "no retry in the server log"

stop_attesta
sed -i "s/^    retry_delay: .*/    retry_delay: 10/" "$T/config.yaml"
start_attesta
/usr/bin/python3 test_chall_retry.py "$BASE" "$ROOT" "$MGMT_PORT" 10 early
# One early try per challenge: the served one and the one re-POSTed 20 times.
n=$(grep -c "client asked, try 2 starts now" "$T/attesta.log")
[ "$n" = 2 ] || fail "expected 2 retries brought forward, saw $n"
grep -q "client asked, try 3" "$T/attesta.log" && fail "a re-POST within the gap moved try 3"
pass "re-POSTs bring a waiting retry forward, once per gap"
