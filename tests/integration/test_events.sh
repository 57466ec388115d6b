#!/usr/bin/env bash
# Events: lego issues and revokes; the JSON-lines log and a webhook receiver
# (which verifies the HS256 JWT with the shared secret) both see
# certificate.issued and certificate.revoked; a receiver failing twice with
# 500 gets the event on attempt 3; a receiver that hangs does not slow
# enrollment down.
. "$(dirname "$0")/lib.sh"
need lego
need python3

RECEIVER="$(dirname "$0")/../mockmdm/webhook_receiver.py"
export WEBHOOK_SECRET="it-webhook-secret-$RANDOM$RANDOM"
python3 "$RECEIVER" --log "$T/received.jsonl" --port-file "$T/wh.port" 2>"$T/receiver.log" &
PIDS+=($!)
for _ in $(seq 50); do [ -s "$T/wh.port" ] && break; sleep 0.1; done
WH_PORT=$(cat "$T/wh.port") || fail "webhook receiver did not start"
WH="http://127.0.0.1:$WH_PORT"

start_challtestsrv
HTTP_PORT=$(free_port); TLS_PORT=$(free_port)
write_config "$HTTP_PORT" "$TLS_PORT" "events:
  webhooks:
    - name: ok
      url: $WH/ok
      secret_env: WEBHOOK_SECRET
    - name: flaky
      url: $WH/flaky
      secret_env: WEBHOOK_SECRET
      types: [certificate.issued]
      backoff: 1s
      attempts: 5
    - name: hang
      url: $WH/hang
      secret_env: WEBHOOK_SECRET
      types: [certificate.issued]
      timeout: 2s
      attempts: 1"
start_attesta
EVENTS="$T/data/events.jsonl"

export LEGO_CA_CERTIFICATES="$ROOT"
LEGO=(lego --server "$BASE/acme/default/directory" --accept-tos --email it@example.com
      --path "$T/lego" --dns.resolvers "127.0.0.1:$DNS_PORT")

t0=$(date +%s%N)
"${LEGO[@]}" --domains ev.example.test --http --http.port "127.0.0.1:$HTTP_PORT" run \
  >"$T/lego-http.log" 2>&1 || { cat "$T/lego-http.log"; fail "lego http-01"; }
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check_cert "$T/lego/certificates/ev.example.test.crt" "DNS:ev.example.test"
# The hanging receiver holds its request 30 s; enrollment must not wait for it.
[ "$ms" -lt 15000 ] || fail "issuance took ${ms} ms with a hanging webhook"
pass "lego issuance in ${ms} ms while a webhook hangs"

# wait_for FILE PYTHON-CONDITION-ON-LINES [SECONDS]
wait_for() {
  for _ in $(seq $(( ${3:-15} * 10 ))); do
    python3 - "$1" "$2" <<'PY' && return 0
import json, sys
try:
    lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
except FileNotFoundError:
    sys.exit(1)
sys.exit(0 if eval(sys.argv[2]) else 1)
PY
    sleep 0.1
  done
  return 1
}

wait_for "$EVENTS" "any(l['type']=='certificate.issued' and 'time' in l and isinstance(l['event'], dict) for l in lines)" \
  || { cat "$EVENTS" 2>/dev/null; fail "no certificate.issued line in $EVENTS"; }
pass "certificate.issued in the JSON-lines file"

wait_for "$T/received.jsonl" "any(l['path']=='/ok' and l['verified'] and l['claims']['typ']=='certificate.issued' and l['claims']['iss']=='attesta' and l['claims'].get('jti') and isinstance(l['claims']['event'], dict) for l in lines)" \
  || { cat "$T/received.jsonl" 2>/dev/null; fail "receiver got no verified certificate.issued"; }
pass "webhook receiver verified the HS256 JWT of certificate.issued"

# 500, 500, then 200: delivered on the third attempt of the same event (same jti).
wait_for "$T/received.jsonl" "any(l['path']=='/flaky' and l['status']==200 and l['n']==3 for l in lines)" 20 \
  || { cat "$T/received.jsonl"; fail "flaky receiver never got attempt 3"; }
grep -q "webhook.*flaky: delivered certificate.issued .*attempt=3" "$T/attesta.log" \
  || { grep webhook "$T/attesta.log"; fail "no 'delivered ... attempt=3' log line"; }
pass "receiver failing twice with 500 got the event on attempt 3"

grep -q "hang: gave up on certificate.issued" "$T/attesta.log" || \
  wait_for "$T/received.jsonl" "True" 1 || true
# Secrets never reach the log.
if grep -q "$WEBHOOK_SECRET" "$T/attesta.log" "$T/attesta.out"; then fail "webhook secret logged"; fi
pass "webhook secret not logged"

"${LEGO[@]}" --domains ev.example.test revoke --keep --reason 4 >"$T/lego-revoke.log" 2>&1 \
  || { cat "$T/lego-revoke.log"; fail "lego revoke"; }
wait_for "$EVENTS" "any(l['type']=='certificate.revoked' for l in lines)" \
  || { cat "$EVENTS"; fail "no certificate.revoked line"; }
wait_for "$T/received.jsonl" "any(l['path']=='/ok' and l['verified'] and l['claims']['typ']=='certificate.revoked' for l in lines)" \
  || { cat "$T/received.jsonl"; fail "receiver got no certificate.revoked"; }
# flaky subscribed to certificate.issued only
wait_for "$T/received.jsonl" "not any(l['path']=='/flaky' and l['claims']['typ']=='certificate.revoked' for l in lines)" 1 \
  || fail "a webhook got a type it did not subscribe to"
pass "certificate.revoked in the file and at the receiver (types filter respected)"

stop_attesta
pass "graceful SIGTERM"
