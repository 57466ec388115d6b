#!/usr/bin/env python3
"""RFC 8555 protocol tests against the real server: every refusal asserts its exact
problem type and status. Usage: test_protocol.py BASE_URL ROOT_PEM MGMT_PORT EAB_KID EAB_KEY
DB NOWAIT_BASE_URL NOWAIT_ROOT_PEM (a second server configured with acme.challenges.answer_wait: 0)
"""
import json
import sys
import time
import urllib.request

from harness import Suite
from acmelib import Client, Key, b64u, b64u_dec, make_csr

BASE, ROOT, MGMT, EAB_KID, EAB_KEY, DB, NOWAIT_BASE, NOWAIT_ROOT = sys.argv[1:9]
DIRURL = BASE + "/acme/default/directory"
CHALLENGE_WAIT = 1.0  # acme.challenges.answer_wait of the main server (test_protocol.sh)
SUITE = Suite()
test = SUITE.test


def expect(r, status, ptype=None):
    assert r.status == status, "want %d got %r" % (status, r)
    if ptype is not None:
        assert r.headers.get("Content-Type", "").startswith("application/problem+json"), r
        assert r.problem_type == ptype, "want %s got %r" % (ptype, r)
        assert r.json().get("detail"), "problem without detail: %r" % r
    assert r.headers.get("Replay-Nonce"), "no Replay-Nonce: %r" % r


def client(**kw):
    c = Client(DIRURL, ROOT, **kw)
    return c


def registered(kind="ES256"):
    c = client(key=Key(kind))
    expect_ok(c.register(), 201)
    return c


def expect_ok(r, status=200):
    assert r.status == status, "want %d got %r" % (status, r)
    assert r.headers.get("Replay-Nonce"), "no Replay-Nonce on %r" % r


def mgmt(path, obj):
    req = urllib.request.Request("http://127.0.0.1:%s/%s" % (MGMT, path), data=json.dumps(obj).encode())
    urllib.request.urlopen(req, timeout=10).read()


def poll(c, url, want, tries=60):
    for _ in range(tries):
        r = c.post(url, None)
        st = r.json().get("status")
        if st in want:
            return r
        time.sleep(0.25)
    raise AssertionError("%s stuck in %r" % (url, r.json()))


def ready_order(c, name):
    r = c.new_order([("dns", name)])
    expect_ok(r, 201)
    order_url, order = r.headers["Location"], r.json()
    authz = c.post(order["authorizations"][0], None).json()
    ch = [x for x in authz["challenges"] if x["type"] == "http-01"][0]
    mgmt("add-http01", {"token": ch["token"], "content": ch["token"] + "." + c.key.thumbprint()})
    expect_ok(c.post(ch["url"], {}))
    poll(c, order_url, ("ready", "invalid"))
    return order_url, c.post(order_url, None).json()


# ---------------------------------------------------------------- directory, nonces
@test
def directory_and_cors():
    c = client()
    d = c.dir
    for k in ("newNonce", "newAccount", "newOrder", "revokeCert", "keyChange"):
        assert d[k].startswith(BASE + "/acme/default/"), d
    assert "meta" in d
    r = c.get(DIRURL, headers={"Origin": "https://example.org"})
    assert r.headers.get("Access-Control-Allow-Origin") == "*", r


@test
def new_nonce_head_and_get():
    c = client()
    r = c.request("HEAD", c.dir["newNonce"])
    assert r.status == 200 and r.headers["Replay-Nonce"], r
    assert "no-store" in r.headers.get("Cache-Control", ""), r
    r = c.get(c.dir["newNonce"])
    assert r.status == 204 and r.body == b"" and r.headers["Replay-Nonce"], r
    assert "no-store" in r.headers.get("Cache-Control", ""), r


@test
def nonces_unique_and_base64url():
    c = client()
    seen = []
    import re
    for _ in range(300):
        n = c.new_nonce()
        assert re.fullmatch(r"[A-Za-z0-9_-]+", n), n
        assert n not in seen
        seen.append(n)
    raw = [b64u_dec(n) for n in seen]
    nonces_look_random([int.from_bytes(b, "big") for b in raw], 8 * len(raw[0]))


def nonces_look_random(vals, bits):
    """N-6: no arithmetic relation between consecutive nonces. For random values two
    neighbours share 24 leading bits with odds 2^-24 (~2e-5 over 299 pairs) and rise half
    the time (bounds below are 8 standard deviations); a counter, whether in front or
    under a fixed prefix, fails both."""
    pairs = list(zip(vals, vals[1:]))
    prefix = max(bits - (a ^ b).bit_length() for a, b in pairs)
    assert prefix < 24, "consecutive nonces share %d leading bits" % prefix
    rises = sum(1 for a, b in pairs if b > a)
    assert 0.27 * len(pairs) < rises < 0.73 * len(pairs), "%d of %d rise" % (rises, len(pairs))
    assert len({b - a for a, b in pairs}) == len(pairs), "repeated step between nonces"


@test
def plain_get_on_resources_is_405():
    c = registered()
    r = c.get(c.kid)
    assert r.status == 405 and r.problem_type == "malformed", r


# ---------------------------------------------------------------- JWS rules
@test
def account_algorithms():
    for kind in ("ES256", "ES384", "RS256", "EdDSA"):
        c = client(key=Key(kind))
        r = c.register()
        assert r.status == 201, (kind, r)
        r2 = client(key=c.key).register()
        assert r2.status == 200 and r2.headers["Location"] == c.kid, (kind, r2)


@test
def concurrent_new_account_same_key():
    import threading
    key = Key("ES256")
    results = []
    def reg():
        results.append(client(key=key).register())
    threads = [threading.Thread(target=reg) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    locations = {r.headers.get("Location") for r in results}
    assert len(locations) == 1 and None not in locations, results
    assert sum(1 for r in results if r.status == 201) <= 1, [r.status for r in results]
    assert all(r.status in (200, 201) for r in results), results


@test
def only_return_existing():
    c = client()
    r = c.register(onlyReturnExisting=True)
    expect(r, 400, "accountDoesNotExist")


@test
def bad_nonce_then_retry():
    c = client()
    # the shape of a real nonce (16 bytes), so it is refused for its content, not its length
    r = c.post(c.dir["newAccount"], {"termsOfServiceAgreed": True}, nonce=b64u(b"x" * 16))
    expect(r, 400, "badNonce")
    assert r.headers.get("Replay-Nonce")
    r = c.register()  # uses the nonce from the badNonce answer
    assert r.status == 201, r


@test
def replayed_nonce():
    c = registered()
    n = c.new_nonce()
    r1 = c.post(c.kid, None, nonce=n)
    expect_ok(r1)
    r2 = c.post(c.kid, None, nonce=n)
    expect(r2, 400, "badNonce")


@test
def nonce_spent_by_failed_request():
    c = registered()
    n = c.new_nonce()
    r1 = c.post(c.kid, None, nonce=n, protected_extra={"url": BASE + "/elsewhere"})
    expect(r1, 401 if r1.status == 401 else 403, "unauthorized")
    expect(c.post(c.kid, None, nonce=n), 400, "badNonce")


@test
def missing_nonce_is_badnonce():
    c = registered()
    expect(c.post(c.kid, None, drop=("nonce",)), 400, "badNonce")


@test
def nonce_not_base64url_is_malformed():
    c = registered()
    expect(c.post(c.kid, None, nonce="a+b/"), 400, "malformed")


@test
def url_mismatch():
    c = registered()
    r = c.post(c.dir["newOrder"], {"identifiers": [{"type": "dns", "value": "a.test"}]},
               protected_extra={"url": c.dir["newAccount"]})
    assert r.problem_type == "unauthorized", r
    for variant in (c.kid.replace("127.0.0.1", "127.0.0.1:443"), c.kid + "/", c.kid.upper()):
        r = c.post(c.kid, None, protected_extra={"url": variant})
        assert r.problem_type == "unauthorized", (variant, r)


@test
def unknown_kid():
    c = registered()
    c.kid = BASE + "/acme/default/account/AAAAAAAAAAAAAAAAAAAAAA"
    expect(c.post(c.dir["newOrder"], {"identifiers": [{"type": "dns", "value": "a.test"}]}),
           400, "accountDoesNotExist")


@test
def bad_signature():
    c = registered()
    j = c.jws(c.kid, None)
    sig = bytearray(b64u_dec(j["signature"]))
    sig[5] ^= 0xFF
    j["signature"] = b64u(bytes(sig))
    expect(c.post_raw(c.kid, j), 400, "malformed")


@test
def jwk_and_kid_together():
    c = registered()
    expect(c.post(c.kid, None, protected_extra={"jwk": c.key.jwk()}), 400, "malformed")


@test
def alg_none_and_hmac():
    c = registered()
    for alg in ("none", "HS256"):
        expect(c.post(c.kid, None, alg=alg), 400, "badSignatureAlgorithm")


@test
def unsupported_alg_lists_algorithms():
    c = registered()
    r = c.post(c.kid, None, alg="PS256")
    expect(r, 400, "badSignatureAlgorithm")
    assert "ES256" in r.json().get("algorithms", []), r


@test
def wrong_content_type():
    c = registered()
    r = c.post(c.kid, None, content_type="application/json")
    assert r.status == 415, r


@test
def malformed_bodies():
    c = registered()
    expect(c.post_raw(c.kid, b"{not json"), 400, "malformed")
    expect(c.post_raw(c.kid, {"payload": ""}), 400, "malformed")
    j = c.jws(c.kid, None)
    expect(c.post_raw(c.kid, ("%s.%s.%s" % (j["protected"], j["payload"], j["signature"])).encode()),
           400, "malformed")
    j = c.jws(c.kid, None)
    j["header"] = {"kid": c.kid}
    expect(c.post_raw(c.kid, j), 400, "malformed")
    j = c.jws(c.kid, None)
    expect(c.post_raw(c.kid, {"signatures": [j], "payload": j["payload"]}), 400, "malformed")
    expect(c.post(c.kid, None, protected_extra={"b64": False}), 400, "malformed")
    j = c.jws(c.kid, None)
    j["protected"] += "="
    expect(c.post_raw(c.kid, j), 400, "malformed")


@test
def oversized_body():
    c = registered()
    r = c.post(c.dir["newOrder"], {"identifiers": [{"type": "dns", "value": "a.test"}], "pad": "x" * 100000})
    assert r.status == 413 and r.problem_type == "malformed", r
    # Far beyond the limit the connection is cut; the server stays up.
    try:
        c.post(c.dir["newOrder"], {"pad": "x" * 8000000})
    except Exception:
        pass
    assert client().dir["newNonce"]


@test
def new_order_with_jwk_refused():
    c = registered()
    r = c.post(c.dir["newOrder"], {"identifiers": [{"type": "dns", "value": "a.test"}]}, use_jwk=True)
    expect(r, 400, "malformed")


@test
def post_as_get_new_order_refused():
    c = registered()
    expect(c.post(c.dir["newOrder"], None), 400, "malformed")


# ---------------------------------------------------------------- accounts
@test
def contact_validation():
    c = client()
    expect(c.register(contact=["tel:+1555"]), 400, "unsupportedContact")
    c = client()
    expect(c.register(contact=["mailto:a@example.com,b@example.com"]), 400, "invalidContact")


@test
def account_update_and_deactivate():
    c = registered()
    pending = c.new_order([("dns", "cancelled.example.test")])
    expect_ok(pending, 201)
    r = c.post(c.kid, {"contact": ["mailto:new@example.com"]})
    expect_ok(r)
    assert r.json()["contact"] == ["mailto:new@example.com"], r
    r = c.post(c.kid, {"status": "deactivated"})
    expect_ok(r)
    assert r.json()["status"] == "deactivated"
    expect(c.new_order([("dns", "a.test")]), 401, "unauthorized")
    # its pending order became invalid. The deactivated account can no longer read
    # it (401), so look at the record itself.
    import sqlite3
    db = sqlite3.connect(DB)
    st = db.execute("SELECT status FROM records WHERE kind = 1 AND id = ?",
                    (pending.headers["Location"].rsplit("/", 1)[1],)).fetchone()
    assert st == ("invalid",), st


@test
def key_change():
    c = registered()
    new = Key("ES256")
    # RFC 8555 §7.3.5: the inner JWS is signed by the new key and carries no nonce.
    inner = sign_inner(new, c.dir["keyChange"], {"account": c.kid, "oldKey": c.key.jwk()})
    r = c.post(c.dir["keyChange"], inner)
    expect_ok(r)
    old = c.key
    c.key = new
    expect_ok(c.post(c.kid, None))
    c.key = old
    r = c.post(c.kid, None)
    assert r.status in (400, 401, 403), r
    # The old key now finds no account.
    expect(client(key=old).register(onlyReturnExisting=True), 400, "accountDoesNotExist")


def sign_inner(key, url, payload):
    prot = b64u(json.dumps({"alg": key.alg, "jwk": key.jwk(), "url": url}))
    pl = b64u(json.dumps(payload))
    return {"protected": prot, "payload": pl, "signature": b64u(key.sign(("%s.%s" % (prot, pl)).encode()))}


@test
def eab_binding():
    eab_dir = BASE + "/acme/eab/directory"
    c = Client(eab_dir, ROOT)
    assert c.dir["meta"].get("externalAccountRequired") is True, c.dir
    r = c.register()
    assert r.problem_type == "externalAccountRequired", r
    import hmac, hashlib
    def eab(key_b64, kid):
        prot = b64u(json.dumps({"alg": "HS256", "kid": kid, "url": c.dir["newAccount"]}))
        pl = b64u(json.dumps(c.key.jwk()))
        mac = hmac.new(b64u_dec(key_b64), ("%s.%s" % (prot, pl)).encode(), hashlib.sha256).digest()
        return {"protected": prot, "payload": pl, "signature": b64u(mac)}
    r = c.register(externalAccountBinding=eab(b64u(b"wrong key" * 4), EAB_KID))
    assert r.problem_type == "unauthorized", r
    r = c.register(externalAccountBinding=eab(EAB_KEY, EAB_KID))
    assert r.status == 201, r
    c2 = Client(eab_dir, ROOT)
    r = c2.register(externalAccountBinding=eab(EAB_KEY, EAB_KID))
    assert r.problem_type == "unauthorized", r  # key already bound


# ---------------------------------------------------------------- orders and issuance
@test
def rejected_identifiers_have_subproblems():
    c = registered()
    r = c.new_order([("dns", "ok.example.test"), ("dns", "bad_name!.test"), ("email", "a@b.c")])
    # Different reasons per identifier make a "compound" problem (RFC 8555 §6.7.1).
    assert r.status == 400 and r.problem_type == "compound", r
    subs = r.json().get("subproblems", [])
    assert len(subs) == 2, r
    for s in subs:
        assert s["identifier"]["type"] and s["identifier"]["value"], s
    assert "identifier" not in r.json()


@test
def other_account_cannot_read_order():
    a, b = registered(), registered()
    r = a.new_order([("dns", "mine.example.test")])
    expect_ok(r, 201)
    r2 = b.post(r.headers["Location"], None)
    assert r2.status in (401, 403, 404) and "identifiers" not in (r2.json() or {}), r2


@test
def finalize_before_ready():
    c = registered()
    r = c.new_order([("dns", "early.example.test")])
    _, csr = make_csr(["early.example.test"])
    expect(c.post(r.json()["finalize"], {"csr": b64u(csr)}), 403, "orderNotReady")


@test
def issuance_csr_checks_download_revoke():
    c = registered()
    order_url, order = ready_order(c, "flow.example.test")
    assert order["status"] == "ready", order
    _, bad = make_csr(["other.example.test"])
    expect(c.post(order["finalize"], {"csr": b64u(bad)}), 400, "badCSR")
    expect(c.post(order["finalize"], {"csr": b64u(bad) + "="}), 400, "malformed")
    key, csr = make_csr(["flow.example.test"])
    r = c.post(order["finalize"], {"csr": b64u(csr)})
    expect_ok(r)
    order = poll(c, order_url, ("valid",)).json()
    r = c.post(order["certificate"], None)
    expect_ok(r)
    assert r.headers["Content-Type"].startswith("application/pem-certificate-chain"), r
    pem = r.body.decode()
    assert pem.count("BEGIN CERTIFICATE") >= 2, pem
    from cryptography import x509
    cert = x509.load_pem_x509_certificate(pem.encode())
    der = cert.public_bytes(__import__("cryptography.hazmat.primitives.serialization",
                                       fromlist=["Encoding"]).Encoding.DER)
    other = registered()
    expect(other.post(c.dir["revokeCert"], {"certificate": b64u(der)}), 403, "unauthorized")
    expect(c.post(c.dir["revokeCert"], {"certificate": b64u(der), "reason": 7}), 400, "badRevocationReason")
    expect_ok(c.post(c.dir["revokeCert"], {"certificate": b64u(der), "reason": 1}))
    expect(c.post(c.dir["revokeCert"], {"certificate": b64u(der)}), 400, "alreadyRevoked")


@test
def revoke_with_certificate_key():
    c = registered()
    order_url, order = ready_order(c, "certkey.example.test")
    key, csr = make_csr(["certkey.example.test"])
    expect_ok(c.post(order["finalize"], {"csr": b64u(csr)}))
    order = poll(c, order_url, ("valid",)).json()
    pem = c.post(order["certificate"], None).body
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    ck = Key("ES256")
    ck.priv = key
    stranger = Client(DIRURL, ROOT, key=ck)
    r = stranger.post(c.dir["revokeCert"], {"certificate": b64u(der)}, use_jwk=True)
    expect_ok(r)


@test
def orders_list():
    c = registered()
    r = c.new_order([("dns", "list.example.test")])
    acct = c.post(c.kid, None).json()
    r2 = c.post(acct["orders"], None)
    expect_ok(r2)
    assert r.headers["Location"] in r2.json()["orders"], r2


# ---------------------------------------------------------------- challenge answers (Z-2, S-10, CH-5)
def answer_http01(c, name, serve):
    """Orders name and answers its http-01 challenge, the key authorization served or not.
    Returns the authz URL, the challenge, the answer and the seconds it took."""
    r = c.new_order([("dns", name)])
    expect_ok(r, 201)
    authz_url = r.json()["authorizations"][0]
    ch = [x for x in c.post(authz_url, None).json()["challenges"] if x["type"] == "http-01"][0]
    if serve:
        mgmt("add-http01", {"token": ch["token"], "content": ch["token"] + "." + c.key.thumbprint()})
    t0 = time.monotonic()
    r = c.post(ch["url"], {})
    took = time.monotonic() - t0
    expect_ok(r)
    assert r.headers.get("Link") == "<%s>;rel=\"up\"" % authz_url, r
    return authz_url, ch, r, took


@test
def challenge_answer_carries_quick_validation():
    c = registered()
    authz_url, _, r, took = answer_http01(c, "quick.example.test", True)
    assert r.json()["status"] == "valid" and r.json().get("validated"), r
    assert "Retry-After" not in r.headers, r
    # Woken by the settlement, not answered after the bound by rereading the challenge.
    assert took < CHALLENGE_WAIT, took
    authz = c.post(authz_url, None).json()
    assert authz["status"] == "valid", authz


@test
def challenge_answer_without_wait_is_processing():
    c = Client(NOWAIT_BASE + "/acme/default/directory", NOWAIT_ROOT)
    expect_ok(c.register(), 201)
    authz_url, _, r, _ = answer_http01(c, "nowait.example.test", True)
    assert r.json()["status"] in ("processing", "pending"), r
    assert r.headers.get("Retry-After"), r
    # The validation itself still succeeds; only the answer did not wait for it.
    assert poll(c, authz_url, ("valid", "invalid")).json()["status"] == "valid"


@test
def challenge_answer_waits_at_most_the_bound():
    c = registered()
    _, ch, r, took = answer_http01(c, "unserved.example.test", False)
    # The first try fails at once; the retry comes after retry_delay (3 s), past the bound.
    assert r.json()["status"] == "processing", r
    assert r.headers.get("Retry-After"), r
    assert CHALLENGE_WAIT <= took < CHALLENGE_WAIT + 1.5, took
    final = poll(c, ch["url"], ("valid", "invalid")).json()
    assert final["status"] == "invalid" and final.get("error"), final


def main():
    return 1 if SUITE.run() else 0


if __name__ == "__main__":
    sys.exit(main())
