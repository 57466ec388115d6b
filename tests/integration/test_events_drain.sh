#!/usr/bin/env bash
# Webhook drain at shutdown (events.shutdown_drain): a burst of events behind a slow
# receiver, then SIGTERM at once: every event reaches the receiver, with the id of its
# line in the JSON-lines file as jti, before the process exits. A receiver that is down or
# never answers: the process exits within the drain bound and logs each undelivered event
# by id, and the total. A second SIGTERM ends a long drain at once.
. "$(dirname "$0")/lib.sh"
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import cryptography' 2>/dev/null \
  || { echo "skip: python3-cryptography missing"; exit 77; }
cd "$(dirname "$0")"

RECEIVER="$PWD/../mockmdm/webhook_receiver.py"
export WEBHOOK_SECRET="it-drain-secret-$RANDOM$RANDOM"
/usr/bin/python3 "$RECEIVER" --log "$T/received.jsonl" --port-file "$T/wh.port" \
  2>"$T/receiver.log" &
PIDS+=($!)
for _ in $(seq 50); do [ -s "$T/wh.port" ] && break; sleep 0.1; done
WH="http://127.0.0.1:$(cat "$T/wh.port")" || fail "webhook receiver did not start"
RECEIVED="$T/received.jsonl"
DOWN_PORT=$(free_port) # nothing listens there
DNS_PORT=$(free_port)  # write_config wants a resolver; no test here validates a name
# A webhook whose receiver takes the request and never answers in time.
HANG="    - name: hang
      url: $WH/hang
      secret_env: WEBHOOK_SECRET
      timeout: 60s
      attempts: 1"

# serve NAME YAML: a fresh server in $T_TOP/NAME with the events section YAML.
serve() {
  T="$T_TOP/$1"
  mkdir -p "$T"
  write_config 80 443 "events:
$2"
  start_attesta
}

# burst N: N enrollment.denied events, one after another: devices that report a failure
# for their device-attest-01. Each event is emitted before its answer comes back.
burst() {
  /usr/bin/python3 - "$BASE" "$ROOT" "$1" "$RANDOM" <<'PY'
import sys
from acmelib import Client
base, root, n, tag = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
c = Client(base + "/acme/devices/directory", root)
assert c.register().status == 201
for i in range(n):
    r = c.new_order([("permanent-identifier", "C02D%05d%04d" % (tag, i))])
    assert r.status == 201, r
    authz = c.post(r.json()["authorizations"][0], None).json()
    ch = [x for x in authz["challenges"] if x["type"] == "device-attest-01"][0]
    r = c.post(ch["url"], {"error": {"detail": "drain test"}})
    assert r.status == 400 and r.problem_type == "badAttestationStatement", r
PY
}

# term_and_wait: SIGTERM, then the exit status must be 0; sets ELAPSED_MS.
term_and_wait() {
  local t0 rc=0
  t0=$(date +%s%N)
  kill -TERM "$ATTESTA_PID"
  wait "$ATTESTA_PID" || rc=$?
  ELAPSED_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
  [ "$rc" -eq 0 ] || fail "attesta exited $rc after SIGTERM"
}

# ids: the ids of the enrollment.denied lines in this server's events file.
ids() {
  /usr/bin/python3 -c '
import json, sys
print(" ".join(sorted(json.loads(l)["id"] for l in open(sys.argv[1])
                      if json.loads(l)["type"] == "enrollment.denied")))' "$T/data/events.jsonl"
}

# received PATH: the jtis of verified, answered deliveries to PATH.
received() {
  /usr/bin/python3 -c '
import json, sys
print(" ".join(sorted({l["claims"]["jti"] for l in map(json.loads, open(sys.argv[1]))
                       if l["path"] == sys.argv[2] and l["verified"] and l["status"] == 200})))' \
    "$RECEIVED" "$1"
}

# ---- 1. slow receiver, burst, immediate SIGTERM: all delivered before the exit
N=12
serve slow "  shutdown_drain: 30s
  webhooks:
    - name: slow
      url: $WH/slow
      secret_env: WEBHOOK_SECRET"
burst $N
term_and_wait
want=$(ids)
[ "$(wc -w <<<"$want")" -eq $N ] || fail "want $N enrollment.denied lines, got: $want"
got=$(received /slow)
[ "$got" = "$want" ] || fail "receiver got [$got], the events file has [$want]"
grep -q "shutdown: delivering queued webhook events" "$T/attesta.log" \
  || fail "no backlog at SIGTERM: the test proves nothing"
grep -q "shutdown: all [0-9]* queued webhook deliver" "$T/attesta.log" \
  || fail "no 'all ... delivered' line"
! grep -q "not delivered at shutdown" "$T/attesta.log" || fail "an event was given up"
[ "$ELAPSED_MS" -lt 30000 ] || fail "exit took $ELAPSED_MS ms, over the drain bound"
pass "$N events queued at SIGTERM all reached the slow receiver (jti = file id) in $ELAPSED_MS ms"

# ---- 2. receiver down or never answering: exit within the bound, undelivered logged by id
serve down "  shutdown_drain: 3s
  webhooks:
    - name: down
      url: http://127.0.0.1:$DOWN_PORT/x
      secret_env: WEBHOOK_SECRET
      backoff: 1s
$HANG"
burst 3
term_and_wait
[ "$ELAPSED_MS" -lt 8000 ] || fail "exit took $ELAPSED_MS ms with a 3 s drain"
[ "$ELAPSED_MS" -ge 2500 ] || fail "exit after $ELAPSED_MS ms: the 3 s drain was not waited"
grep -q "shutdown: 6 webhook deliveries not made" "$T/attesta.log" \
  || { grep webhook "$T/attesta.log"; fail "no total of 6 undelivered"; }
for id in $(ids); do
  for hook in down hang; do
    grep -q "$hook: enrollment.denied jti=$id not delivered at shutdown" "$T/attesta.log" \
      || fail "$hook: undelivered event $id not logged"
  done
done
if grep -q "$WEBHOOK_SECRET" "$T/attesta.log" "$T/attesta.out"; then fail "secret logged"; fi
pass "receivers down/hanging: exit in $ELAPSED_MS ms (drain 3 s), 6 undelivered logged by id"

# ---- 3. a second SIGTERM ends a long drain at once
serve cut "  shutdown_drain: 60s
  webhooks:
$HANG"
burst 2
kill -TERM "$ATTESTA_PID"
for _ in $(seq 100); do
  grep -q "shutdown: delivering queued webhook events" "$T/attesta.log" && break
  sleep 0.1
done
grep -q "shutdown: delivering queued webhook events" "$T/attesta.log" || fail "no drain began"
sleep 0.5
term_and_wait
[ "$ELAPSED_MS" -lt 3000 ] || fail "the second SIGTERM took $ELAPSED_MS ms to end the drain"
grep -q "ending the webhook drain now" "$T/attesta.log" || fail "second signal not logged"
grep -q "shutdown: 2 webhook deliveries not made" "$T/attesta.log" || fail "no total of 2"
for id in $(ids); do
  grep -q "hang: enrollment.denied jti=$id not delivered at shutdown (drain cut short)" \
    "$T/attesta.log" || fail "cut event $id not logged"
done
pass "second SIGTERM ended a 60 s drain in $ELAPSED_MS ms, undelivered logged by id"
