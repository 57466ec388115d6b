#!/usr/bin/env bash
# SIGTERM while a device's MDM lookup is in flight (the mock MDM answers slowly, the
# shutdown timeout is short): the engine is stopped, not freed, so the lookup ends at
# once without a verdict; the server exits as for any graceful stop (no sanitizer
# report in the ASan build), issues nothing, and the next start looks the device up
# again and admits it.
. "$(dirname "$0")/lib.sh"
: "${SIM_BIN:?SIM_BIN must point at attesta-device-sim}"
command -v sqlite3 >/dev/null || { echo "skip: sqlite3 missing"; exit 77; }
[ -x /usr/bin/python3 ] || { echo "skip: python3 missing"; exit 77; }
SRC=$(cd "$(dirname "$0")/../.." && pwd)

cat >"$T/devices.json" <<'JSON'
{"devices": [{"serial": "C02STOP00001", "udid": "00008103-00000000000D0001",
  "blueprint": "Corp Macs", "email": "alice@example.com"}]}
JSON
/usr/bin/python3 "$SRC/tests/mockmdm/mock_mdm.py" 0 "$T/devices.json" >"$T/mock.port" 2>"$T/mock.log" &
PIDS+=($!)
for _ in $(seq 50); do [ -s "$T/mock.port" ] && break; sleep 0.1; done
M="http://127.0.0.1:$(head -n1 "$T/mock.port")"
curl -sf "$M/_stats" >/dev/null || fail "mock MDM did not start"
mock() { curl -sf -d "$2" "$M/$1"; }
lookups() { curl -sf "$M/_stats" | /usr/bin/python3 -c \
  'import json, sys; print(json.load(sys.stdin)["requests"].get("/api/v1/devices", 0))'; }
export IT_KANDJI_TOKEN=kandji-test-token-s3cr3t

DNS_PORT=$(free_port)
"$SIM_BIN" ca-init --apple-ca "$T/apple" >/dev/null || fail "sim ca-init"
write_config 80 443 "attestation:
  apple:
    roots: [\"$T/apple/apple-root.pem\"]
signal_sources:
  kandji:
    type: http
    request: {url: \"$M/api/v1/devices?serial_number=\${/attest/serial|urlencode}\"}
    auth: {type: bearer, token_env: IT_KANDJI_TOKEN}
    records: \"\$\"
    match: {field: serial_number, equals: \"\${/attest/serial}\"}
    timeout: 30s
    retry: {attempts: 1, deadline: 30s}
    on_failure: allow
enrollment_policies:
  default: {identifiers: [dns], challenges: [http-01]}
  macs:
    identifiers: [permanent-identifier]
    challenges: [device-attest-01]
    signal_sources: [kandji]"
sed -i 's/^  workers: 2$/  workers: 2\n  timeouts:\n    shutdown: 1s/' "$T/config.yaml"
grep -q '^    shutdown: 1s$' "$T/config.yaml" || fail "shutdown timeout not set"
certs() { sqlite3 "$T/data/attesta.db" "SELECT count(*) FROM records WHERE kind = 3;"; }
sanitizer_clean() {
  ! grep -E "Sanitizer|runtime error:" "$T/attesta.log" || fail "sanitizer report in the server log"
}

mock _control '{"mode": "slow", "delay": 25}' >/dev/null
start_attesta
"$SIM_BIN" enroll --directory "$BASE/acme/macs/directory" --trust "$ROOT" --apple-ca "$T/apple" \
  --serial C02STOP00001 --udid 00008103-00000000000D0001 --timeout 60 >"$T/sim.out" 2>&1 &
SIM=$!
for _ in $(seq 150); do [ "$(lookups)" -ge 1 ] && break; sleep 0.1; done
[ "$(lookups)" -ge 1 ] || { cat "$T/sim.out"; fail "the MDM lookup never reached the mock"; }

t0=$(date +%s%N)
kill -TERM "$ATTESTA_PID"
rc=0
wait "$ATTESTA_PID" || rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
[ $rc -eq 0 ] || fail "attesta exited $rc after SIGTERM, want 0 (graceful)"
[ $ms -lt 15000 ] || fail "shutdown took ${ms} ms: it waited for the slow MDM"
sanitizer_clean
grep -q "kandji: engine stopped before an answer (no verdict)" "$T/attesta.log" \
  || fail "the lookup in flight did not end with the engine"
grep -q "MDM engine stopped; decision left for restart" "$T/attesta.log" \
  || fail "no decision left for restart"
grep -q "admitted\|refused" "$T/attesta.log" && fail "a stopped lookup decided the enrollment"
wait "$SIM" && fail "the enrollment finished although the server stopped"
[ "$(certs)" = 0 ] || fail "a certificate was issued"
pass "SIGTERM with a lookup in flight: graceful exit in ${ms} ms, no verdict (on_failure: allow ignored), nothing issued"

# The next start asks the MDM again; the device is admitted (nothing issued without finalize).
mock _reset '' >/dev/null
mv "$T/attesta.log" "$T/attesta-1.log"
start_attesta
for _ in $(seq 100); do grep -q "admitted" "$T/attesta.log" && break; sleep 0.1; done
grep -q "recovery: authz .* MDM lookups started again" "$T/attesta.log" || fail "no lookup at restart"
grep -q "authz .* admitted" "$T/attesta.log" || fail "device not admitted after the restart"
[ "$(certs)" = 0 ] || fail "a certificate was issued without finalize"
pass "the next start looks the device up again and admits it"

# A challenge answer outliving the shutdown timeout: an outside transaction holds the
# database's write lock, so the answer waits in the store while SIGTERM's timeout runs
# out and the engine is stopped; released, it asks the stopped engine for its lookup.
before=$(lookups)
"$SIM_BIN" enroll --directory "$BASE/acme/macs/directory" --trust "$ROOT" --apple-ca "$T/apple" \
  --serial C02STOP00001 --udid 00008103-00000000000D0001 --hold "$T/answer" >"$T/sim2.out" 2>&1 &
SIM=$!
authzs() { sqlite3 "$T/data/attesta.db" "SELECT count(*) FROM records WHERE kind = 2;"; }
for _ in $(seq 100); do [ "$(authzs)" -ge 2 ] && break; sleep 0.1; done
[ "$(authzs)" -ge 2 ] || { cat "$T/sim2.out"; fail "second order not created"; }
/usr/bin/python3 - "$T/data/attesta.db" "$T/locked" "$T/unlock" <<'PY' &
import os, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
db.execute("BEGIN IMMEDIATE")
open(sys.argv[2], "w").close()
while not os.path.exists(sys.argv[3]):
    time.sleep(0.02)
db.execute("ROLLBACK")
PY
LOCKER=$!
for _ in $(seq 100); do [ -f "$T/locked" ] && break; sleep 0.1; done
touch "$T/answer"
sleep 1
kill -TERM "$ATTESTA_PID"
for _ in $(seq 100); do grep -q "requests still running after 1 s" "$T/attesta.log" && break; sleep 0.1; done
touch "$T/unlock"
wait "$LOCKER"
grep -q "shutdown: 1 requests still running after 1 s" "$T/attesta.log" \
  || fail "the challenge answer was not in flight past the shutdown timeout"
rc=0
wait "$ATTESTA_PID" || rc=$?
[ $rc -eq 0 ] || fail "attesta exited $rc after SIGTERM, want 0 (graceful)"
sanitizer_clean
[ "$(grep -c "MDM engine stopped; decision left for restart" "$T/attesta.log")" = 1 ] \
  || fail "the late answer's decision was not left for restart"
grep -q "authz .* refused" "$T/attesta.log" && fail "a stopped engine refused the device"
[ "$(lookups)" = "$before" ] || fail "a stopped engine still asked the MDM"
wait "$SIM" && fail "the enrollment finished although the server stopped"
[ "$(certs)" = 0 ] || fail "a certificate was issued"
pass "a challenge answer outliving shutdown meets a stopped engine: no crash, no verdict"
