#!/usr/bin/env python3
"""Configured limits against the real server (see test_limits.sh for the values):
body and header size, JSON depth, identifiers per order, orders per hour, new accounts
per address, connections per address and the whole-request read deadline for slow
clients. Also the listener's TLS profile: TLS 1.2 suites, no plain HTTP, never ALPN
acme-tls/1.

Usage: test_limits.py BASE ROOT_PEM PORT
"""
import socket
import ssl
import sys
import threading
import time

from harness import Suite
from acmelib import Client

BASE, ROOT, PORT = sys.argv[1], sys.argv[2], int(sys.argv[3])
DIRURL = BASE + "/acme/default/directory"
MAX_BODY, MAX_HEADERS, MAX_CONNS, READ_TIMEOUT = 8192, 4096, 6, 2
MAX_IDS, ORDERS_PER_HOUR, ACCOUNTS_PER_IP_HOUR = 3, 3, 8
CTX = ssl.create_default_context(cafile=ROOT)
SUITE = Suite()
test = SUITE.test


def problem(r, status, ptype):
    assert r.status == status and r.problem_type == ptype, "want %d %s got %r" % (status, ptype, r)


# Accounts this run created from 127.0.0.1: all count against ACCOUNTS_PER_IP_HOUR.
CREATED = [0]


def register(c):
    r = c.register()
    assert r.status == 201, r
    CREATED[0] += 1
    return r


def tls():
    s = socket.create_connection(("127.0.0.1", PORT), timeout=30)
    return CTX.wrap_socket(s, server_hostname="127.0.0.1")


def http_get(s, path="/acme/default/directory"):
    """One keep-alive GET on s; returns the status (0 when the server closed)."""
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            return 0, data
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    while len(rest) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    return int(head.split()[1]), head


def closed_within(s, seconds):
    """True when the server closes s within seconds (reads until EOF/reset)."""
    s.settimeout(seconds)
    try:
        while s.recv(4096):
            pass
        return True
    except (ConnectionError, ssl.SSLError, OSError) as e:
        return not isinstance(e, socket.timeout)


def server_serves():
    return Client(DIRURL, ROOT).get(DIRURL).status == 200


@test
def request_body():
    c = Client(DIRURL, ROOT)
    r = c.request("POST", c.dir["newAccount"], b"{" + b" " * (MAX_BODY + 1) + b"}")
    problem(r, 413, "malformed")
    try:  # beyond the slack the connection is cut, possibly while we still send
        r = c.request("POST", c.dir["newAccount"], b"x" * (MAX_BODY * 8))
        assert r.status == 413, r
    except OSError:  # urllib.error.URLError, ConnectionResetError, BrokenPipeError
        pass
    assert server_serves()


@test
def header_block():
    s = tls()
    s.sendall(b"GET /acme/default/directory HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_HEADERS * 2)
              + b"\r\n\r\n")
    try:
        data = s.recv(4096)
    except (ConnectionError, ssl.SSLError):
        data = b""
    assert data == b"" or data.split()[1] in (b"400", b"413", b"431"), data[:200]
    assert closed_within(s, 5), "oversized header block: connection left open"
    s = tls()
    s.sendall(b"GET /acme/default/directory HTTP/1.1\r\nHost: x\r\n" +
              b"".join(b"X-H%d: v\r\n" % i for i in range(2000)) + b"\r\n")
    assert closed_within(s, 5), "2000 headers: connection left open"
    assert server_serves()


@test
def json_depth():
    c = Client(DIRURL, ROOT)
    register(c)
    # acme.limits.max_json_depth is 8 here: depth 8 parses (then fails as no order), 9 is refused.
    r = c.post(c.dir["newOrder"], {"identifiers": [{"type": "dns", "value": "d.example"}],
                                   "x": [[[[[[["deep"]]]]]]]})
    assert r.status == 201, r
    r = c.post(c.dir["newOrder"], {"identifiers": [{"type": "dns", "value": "d.example"}],
                                   "x": [[[[[[[["deep"]]]]]]]]})
    problem(r, 400, "malformed")
    assert "deeper than 8" in r.json()["detail"], r


@test
def identifiers_per_order():
    c = Client(DIRURL, ROOT)
    register(c)
    r = c.new_order([("dns", "n%d.example" % i) for i in range(MAX_IDS + 1)])
    problem(r, 400, "malformed")
    r = c.new_order([("dns", "n%d.example" % i) for i in range(MAX_IDS)])
    assert r.status == 201, r


@test
def orders_per_hour():
    c = Client(DIRURL, ROOT)
    register(c)
    for i in range(ORDERS_PER_HOUR):
        r = c.new_order([("dns", "r%d.example" % i)])
        assert r.status == 201, (i, r)
    r = c.new_order([("dns", "over.example")])
    problem(r, 429, "rateLimited")
    ra = int(r.headers.get("Retry-After", "0"))
    assert 0 < ra <= 3600, r
    time.sleep(1)
    problem(c.new_order([("dns", "again.example")]), 429, "rateLimited")
    # another account is not affected
    d = Client(DIRURL, ROOT)
    register(d)
    assert d.new_order([("dns", "other.example")]).status == 201


@test
def conns_per_ip():
    held = []
    for _ in range(MAX_CONNS):
        s = tls()
        st, _ = http_get(s)
        assert st == 200, st
        held.append(s)
    s = tls()
    st, head = http_get(s)
    assert st == 429 and b"close" in head.lower(), (st, head)
    assert closed_within(s, 5)
    held.pop().close()
    time.sleep(0.3)
    s = tls()
    assert http_get(s)[0] == 200, "a freed slot is not reusable"
    held.append(s)
    for s in held:
        s.close()
    time.sleep(0.3)


def trickle(s, data, stop):
    try:
        for b in data:
            if stop.is_set():
                return
            s.sendall(bytes([b]))
            time.sleep(1)
    except (ConnectionError, ssl.SSLError, OSError):
        pass


@test
def slow_header_trickle():
    s = tls()
    stop = threading.Event()
    t = threading.Thread(target=trickle, args=(s, b"GET /acme/default/directory HTTP/1.1\r\nHost: "
                                              + b"x" * 60 + b"\r\n\r\n", stop), daemon=True)
    t0 = time.time()
    t.start()
    # meanwhile others are served
    time.sleep(0.5)
    assert server_serves()
    ok = closed_within(s, READ_TIMEOUT + 6)
    stop.set()
    assert ok, "a client sending one header byte per second was never cut"
    took = time.time() - t0
    assert took < READ_TIMEOUT + 6, took


@test
def stalled_body():
    s = tls()
    s.sendall(b"POST /acme/default/new-account HTTP/1.1\r\nHost: x\r\nContent-Type: "
              b"application/jose+json\r\nContent-Length: 500\r\n\r\n{\"protected\":")
    time.sleep(0.5)
    assert server_serves()
    assert closed_within(s, READ_TIMEOUT + 4), "a client stalled mid-body was never cut"


@test
def slow_body_trickle():
    s = tls()
    s.sendall(b"POST /acme/default/new-account HTTP/1.1\r\nHost: x\r\nContent-Type: "
              b"application/jose+json\r\nContent-Length: 100\r\n\r\n")
    stop = threading.Event()
    threading.Thread(target=trickle, args=(s, b"{" * 100, stop), daemon=True).start()
    ok = closed_within(s, READ_TIMEOUT + 6)
    stop.set()
    assert ok, "a client trickling its body was never cut"


@test
def keepalive_then_trickle():
    s = tls()
    assert http_get(s)[0] == 200
    stop = threading.Event()
    threading.Thread(target=trickle, args=(s, b"GET /acme/default/directory HTTP/1.1\r\n" + b"X" * 40,
                                           stop), daemon=True).start()
    ok = closed_within(s, READ_TIMEOUT + 6)
    stop.set()
    assert ok, "second request on a keep-alive connection trickled forever"


@test
def silent_connections():
    # connections that never send anything are cut by the deadline too (they hold no slot)
    socks = [socket.create_connection(("127.0.0.1", PORT)) for _ in range(MAX_CONNS * 3)]
    assert server_serves()
    t0 = time.time()
    for s in socks:
        assert closed_within(s, READ_TIMEOUT + 4), "silent TCP connection left open"
    assert time.time() - t0 < READ_TIMEOUT + 4
    assert server_serves()


def tls12_client(ciphers):
    """A TLS 1.2-only client offering just `ciphers` (security level 0: it really offers them)."""
    ctx = ssl.create_default_context(cafile=ROOT)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(ciphers + ":@SECLEVEL=0")
    return ctx


@test
def tls12_aead_only():
    # T-2 (RFC 9325): TLS 1.2 is ECDHE with AEAD only; CBC, SHA-1 MACs and RSA key exchange fail.
    for suite in ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"):
        s = tls12_client(suite).wrap_socket(socket.create_connection(("127.0.0.1", PORT), timeout=10),
                                            server_hostname="127.0.0.1")
        assert s.version() == "TLSv1.2" and s.cipher()[0] == suite, (suite, s.cipher())
        assert http_get(s)[0] == 200, suite
        s.close()
    for suite in ("ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384", "AES128-GCM-SHA256",
                  "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA256:AES256-SHA"):
        raw = socket.create_connection(("127.0.0.1", PORT), timeout=10)
        try:
            s = tls12_client(suite).wrap_socket(raw, server_hostname="127.0.0.1")
            raise AssertionError("TLS 1.2 with only %s accepted: %r" % (suite, s.cipher()))
        except ssl.SSLError:
            pass
        finally:
            raw.close()
    assert server_serves()


@test
def plain_http_gets_no_acme():
    # T-2: ACME only over HTTPS; a plain request to the port gets at most a TLS alert.
    s = socket.create_connection(("127.0.0.1", PORT), timeout=READ_TIMEOUT + 4)
    s.sendall(b"GET /acme/default/directory HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    data = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except (ConnectionError, OSError):
        pass
    s.close()
    assert not data or data[0] == 0x15, "plain HTTP answered: %r" % data[:64]
    assert b"newNonce" not in data and b"HTTP/" not in data, data[:64]


@test
def alpn_acme_tls_never_selected():
    # TA-11 (RFC 8737 §4): acme-tls/1 belongs to validation responders, not to this listener.
    for offer, want in ((["acme-tls/1"], None), (["acme-tls/1", "http/1.1"], "http/1.1")):
        ctx = ssl.create_default_context(cafile=ROOT)
        ctx.set_alpn_protocols(offer)
        try:
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", PORT), timeout=10),
                                server_hostname="127.0.0.1")
        except ssl.SSLError:
            assert want is None, offer  # refusing the handshake is fine too
            continue
        assert s.selected_alpn_protocol() == want, (offer, s.selected_alpn_protocol())
        s.close()


@test
def accounts_per_ip_hour():
    """SEC-3, last since it uses up the address's allowance."""
    first = None
    while CREATED[0] < ACCOUNTS_PER_IP_HOUR:
        c = Client(DIRURL, ROOT)
        register(c)
        first = first or c
    assert first is not None, "other tests already created %d accounts" % CREATED[0]
    r = Client(DIRURL, ROOT).register()
    problem(r, 429, "rateLimited")
    ra = int(r.headers.get("Retry-After", "0"))
    assert 0 < ra <= 3600, r
    # answers that create nothing are neither counted nor refused
    assert first.register().status == 200
    problem(Client(DIRURL, ROOT).register(onlyReturnExisting=True), 400, "accountDoesNotExist")
    problem(Client(DIRURL, ROOT).register(), 429, "rateLimited")
    # accounts made before the limit still work
    assert first.new_order([("dns", "acct-limit.example")]).status == 201


def main():
    return 1 if SUITE.run() else 0


if __name__ == "__main__":
    sys.exit(main())
