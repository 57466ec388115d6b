#!/usr/bin/env bash
# SIGHUP reload: a broken file is refused with FILE:LINE in the log and the
# server keeps its configuration; a file changing server.listen is refused;
# a good file adding a policy serves its directory while a client mid-flow
# (nonce taken before the reload, used after) keeps working; lego issues
# after the reload.
. "$(dirname "$0")/lib.sh"
need lego
need python3
python3 -c 'import cryptography' 2>/dev/null || { echo "skip: python3-cryptography"; exit 77; }

start_challtestsrv
HTTP_PORT=$(free_port); TLS_PORT=$(free_port)
POLICIES="enrollment_policies:
  default: {identifiers: [dns], challenges: [http-01]}"
write_config "$HTTP_PORT" "$TLS_PORT" "$POLICIES"
cp "$T/config.yaml" "$T/good1.yaml"
start_attesta

hup_and_wait() { # hup_and_wait PATTERN: SIGHUP, then wait for PATTERN in the log
  local before; before=$(grep -c "$1" "$T/attesta.log" || true)
  kill -HUP "$ATTESTA_PID"
  for _ in $(seq 100); do
    [ "$(grep -c "$1" "$T/attesta.log" || true)" -gt "$before" ] && return 0
    sleep 0.1
  done
  fail "no '$1' in the log after SIGHUP"
}

# 1. A broken file: FILE:LINE error, old configuration keeps serving.
cp "$T/good1.yaml" "$T/config.yaml"
printf 'enrollment_policies:\n  default: {identifiers: [dns], challenges: [http-99]}\n' >>"$T/config.yaml"
hup_and_wait "reload refused"
grep -q "reload refused: $T/config.yaml:[0-9]*: " "$T/attesta.log" || { grep reload "$T/attesta.log"; fail "no FILE:LINE in the refusal"; }
kill -0 "$ATTESTA_PID" || fail "attesta died on a bad reload"
curl -sf --cacert "$ROOT" "$BASE/acme/default/directory" >/dev/null || fail "old directory gone after a bad reload"
pass "broken file refused with FILE:LINE; old configuration still served"

# 2. A change that needs a restart is refused.
sed 's/listen: "127.0.0.1:0"/listen: "127.0.0.1:1"/' "$T/good1.yaml" >"$T/config.yaml"
hup_and_wait "reload refused"
grep -q "server.listen cannot change on reload; restart attesta" "$T/attesta.log" || fail "listen change not refused"
pass "server.listen change refused"

# 3. A client mid-flow: account and a fresh nonce before the reload, used after it.
cat >"$T/midflow.py" <<'PY'
import os, sys, time
sys.path.insert(0, sys.argv[1])
from acmelib import Client
base, root, tdir = sys.argv[2], sys.argv[3], sys.argv[4]
c = Client(base + "/acme/default/directory", root)
r = c.register()
assert r.status in (200, 201), r
nonce = c.new_nonce()
open(tdir + "/midflow.ready", "w").close()
while not os.path.exists(tdir + "/midflow.go"):
    time.sleep(0.05)
r = c.post(c.dir["newOrder"], {"identifiers": [{"type": "dns", "value": "mid.example.test"}]},
           nonce=nonce)
print(r.status, r.problem_type() if r.status >= 400 else "")
sys.exit(0 if r.status == 201 else 1)
PY
python3 "$T/midflow.py" "$(dirname "$0")" "$BASE" "$ROOT" "$T" >"$T/midflow.log" 2>&1 &
MID=$!
for _ in $(seq 100); do [ -f "$T/midflow.ready" ] && break; sleep 0.1; done
[ -f "$T/midflow.ready" ] || { cat "$T/midflow.log"; fail "mid-flow client did not start"; }

cat >"$T/config.yaml" <<YAML
$(cat "$T/good1.yaml")
  second: {identifiers: [dns], challenges: [http-01, dns-01]}
YAML
hup_and_wait "reload: .* is generation 2"
touch "$T/midflow.go"
wait "$MID" || { cat "$T/midflow.log"; fail "nonce from before the reload refused after it"; }
pass "nonce issued before the reload accepted after it"

curl -sf --cacert "$ROOT" "$BASE/acme/second/directory" | grep -q newOrder || fail "new policy directory not served"
curl -sf --cacert "$ROOT" "$BASE/acme/default/directory" >/dev/null || fail "default directory gone after reload"
pass "new policy's directory served after reload"

export LEGO_CA_CERTIFICATES="$ROOT"
lego --server "$BASE/acme/second/directory" --accept-tos --email it@example.com \
  --path "$T/lego" --dns.resolvers "127.0.0.1:$DNS_PORT" \
  --domains reload.example.test --http --http.port "127.0.0.1:$HTTP_PORT" run \
  >"$T/lego.log" 2>&1 || { cat "$T/lego.log"; fail "lego after reload"; }
check_cert "$T/lego/certificates/reload.example.test.crt" "DNS:reload.example.test"
pass "lego issuance from the new policy after reload"

for _ in $(seq 50); do grep -q "generation 1 freed" "$T/attesta.log" && break; sleep 0.1; done
grep -q "generation 1 freed" "$T/attesta.log" || fail "old generation never freed"
pass "old generation freed once unused"

stop_attesta
pass "graceful SIGTERM"
