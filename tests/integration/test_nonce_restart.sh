#!/usr/bin/env bash
# Nonces across restarts: a SIGTERM saves the nonce state to <data_dir>/nonces.state
# (0600) and the next start consumes the file, so a nonce handed out before a graceful
# restart is accepted once after it and a spent one stays spent; after a SIGKILL there
# is no file and every earlier nonce is refused. No log holds the nonce key.
. "$(dirname "$0")/lib.sh"
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import cryptography' 2>/dev/null \
  || { echo "skip: python3-cryptography missing"; exit 77; }
cd "$(dirname "$0")"

DNS_PORT=$(free_port)
write_config "$(free_port)" "$(free_port)"
STATE="$T/data/nonces.state"
LOGS=()
flow() { /usr/bin/python3 nonce_flow.py "$1" "$BASE/acme/default/directory" "$ROOT" "$2"; }
expect_use() { # expect_use NONCE WANT WHAT
  local got; got=$(flow use "$1")
  [ "$got" = "$2" ] || fail "$3: got '$got', want '$2'"
}
keep_log() { # keep_log N: a copy of this run's stderr and stdout (the next start truncates them)
  cp "$T/attesta.log" "$T/attesta-$1.log"; cp "$T/attesta.out" "$T/attesta-$1.out"
  LOGS+=("$T/attesta-$1.log" "$T/attesta-$1.out")
}

# 1. Three nonces, the first spent; a graceful stop leaves the state file, 0600.
start_attesta
mapfile -t N < <(flow nonces 3)
[ "${#N[@]}" = 3 ] || fail "expected 3 nonces, got ${#N[@]}"
expect_use "${N[0]}" 201 "N1 on first use"
stop_attesta
keep_log 1
[ -f "$STATE" ] || fail "no $STATE after SIGTERM"
[ "$(stat -c %a "$STATE")" = 600 ] || fail "$STATE has mode $(stat -c %a "$STATE"), want 600"
grep -q "nonces: [0-9]* unused saved to $STATE" "$T/attesta.log" || fail "no save line in the log"
KEY=$(/usr/bin/python3 nonce_flow.py key "$STATE")
pass "SIGTERM saved the nonce state (mode 0600)"

# 2. Restart on the same data: file consumed, N2 accepted once, N1 still spent.
start_attesta
[ ! -e "$STATE" ] || fail "$STATE still there after the start"
carried=$(sed -n 's/.*nonces: \([0-9]*\) unused carried over from.*/\1/p' "$T/attesta.log")
[ -n "$carried" ] && [ "$carried" -ge 2 ] || fail "no restore line carrying N2 and N3"
expect_use "${N[1]}" 201 "N2 after a graceful restart"
expect_use "${N[1]}" "400 badNonce" "N2 reused"
expect_use "${N[0]}" "400 badNonce" "N1 spent before the restart"
pass "graceful restart: file consumed, $carried unused nonces carried, each accepted once"

# 3. SIGKILL: nothing is saved and nothing earlier survives.
N4=$(flow nonces 1)
kill -KILL "$ATTESTA_PID"
wait "$ATTESTA_PID" 2>/dev/null || true
keep_log 2
[ ! -e "$STATE" ] || fail "a state file appeared after SIGKILL"
start_attesta
! grep -q "carried over" "$T/attesta.log" || fail "a state was restored after SIGKILL"
expect_use "$N4" "400 badNonce" "N4 after SIGKILL"
expect_use "${N[2]}" "400 badNonce" "N3 after SIGKILL"
stop_attesta
keep_log 3
pass "after SIGKILL every earlier nonce is refused"

/usr/bin/python3 nonce_flow.py nokey "$KEY" "${LOGS[@]}" || fail "nonce key in a log"
pass "the nonce key is in none of ${#LOGS[@]} logs"
