#!/usr/bin/env python3
"""Attack suite: forged or damaged attestations, JWS tricks, cross-account access and
hostile input sizes against the real server. Each attack must be refused with its exact
problem type and issue nothing (certificate rows counted in the store before and after).

Usage: test_attacks.py init CA_DIR
       test_attacks.py BASE ROOT_PEM CA_DIR DB_PATH MGMT_PORT
"""
import datetime
import hashlib
import hmac
import json
import sqlite3
import sys
import time
import urllib.request

from harness import Suite
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives.asymmetric import ec

import applefake as af
from acmelib import Client, Key, b64u, make_csr

if sys.argv[1] == "init":
    af.AppleCA().save(sys.argv[2])
    sys.exit(0)

BASE, ROOT, CADIR, DB, MGMT = sys.argv[1:6]
DEVDIR = BASE + "/acme/devices/directory"
DNSDIR = BASE + "/acme/default/directory"
CA = af.AppleCA.load(CADIR)
SUITE = Suite()
test = SUITE.test
SEEN = []  # (attack, status, problem type) for the report


def certs():
    db = sqlite3.connect("file:%s?mode=ro" % DB, uri=True, timeout=10)
    try:
        return db.execute("SELECT count(*) FROM records WHERE kind = 3").fetchone()[0]
    finally:
        db.close()


def refused(name, r, status, ptype):
    assert r.status == status, "%s: want %d got %r" % (name, status, r)
    assert r.headers.get("Content-Type", "").startswith("application/problem+json"), (name, r)
    assert r.problem_type == ptype, "%s: want %s got %r" % (name, ptype, r)
    SEEN.append((name, r.status, r.problem_type))


_serial = [0]


def device():
    """A registered account on the devices directory plus a fresh device identity."""
    _serial[0] += 1
    c = Client(DEVDIR, ROOT, key=Key("ES256"))
    r = c.register()
    assert r.status == 201, r
    c.serial = "C02ATK%06d" % (_serial[0] + int(time.time()) % 100000)
    c.udid = "00008103-%016X" % (hashlib.sha256(c.serial.encode()).digest()[0] << 40 | _serial[0])
    c.dev_key = ec.generate_private_key(ec.SECP384R1())
    return c


def device_order(c, ident=None):
    r = c.new_order([("permanent-identifier", ident or c.serial)])
    assert r.status == 201, r
    order_url, order = r.headers["Location"], r.json()
    authz_url = order["authorizations"][0]
    authz = c.post(authz_url, None).json()
    ch = [x for x in authz["challenges"] if x["type"] == "device-attest-01"][0]
    return order_url, order, authz_url, ch


def device_csr(c, key=None):
    """A device CSR: CN = the identifier, no SAN (the server adds the permanent-identifier)."""
    key = key or c.dev_key
    b = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, c.serial)]))
    return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def answer(c, ch, cbor):
    return c.post(ch["url"], {"attObj": b64u(cbor)})


def good_attobj(c, token, **kw):
    leaf = CA.leaf(c.dev_key, token=token, serial=c.serial, udid=c.udid, **kw)
    return af.attobj([leaf, CA.sub])


def attest_attack(name, make, want=(400, "badAttestationStatement")):
    """New device order, answer its challenge with make(c, token); refused, nothing issued."""
    base = certs()
    c = device()
    order_url, order, authz_url, ch = device_order(c)
    cbor = make(c, ch["token"])
    r = answer(c, ch, cbor) if cbor is not None else c.post(ch["url"], {"attObj": "not*b64"})
    refused(name, r, *want)
    if want[1] == "badAttestationStatement":
        st = c.post(authz_url, None).json()["status"]
        assert st == "invalid", "%s: authz %s" % (name, st)
    # finalizing anyway must not issue
    f = c.post(order["finalize"], {"csr": b64u(device_csr(c))})
    assert f.status >= 400, "%s: finalize after refusal: %r" % (name, f)
    assert certs() == base, "%s: a certificate was issued" % name


# ---------------------------------------------------------------- sanity: a valid device
@test
def valid_device_enrolls():
    base = certs()
    c = device()
    order_url, order, authz_url, ch = device_order(c)
    r = answer(c, ch, good_attobj(c, ch["token"]))
    assert r.status == 200, r
    f = c.post(order["finalize"], {"csr": b64u(device_csr(c))})
    assert f.status == 200, f
    for _ in range(40):
        o = c.post(order_url, None).json()
        if o["status"] == "valid":
            break
        time.sleep(0.25)
    assert o["status"] == "valid", o
    assert certs() == base + 1


# ---------------------------------------------------------------- chains
@test
def forged_chain():
    # a CA reusing the Apple-like names with its own keys; its root is not configured
    forger = af.AppleCA()

    def make(c, token):
        leaf = forger.leaf(c.dev_key, token=token, serial=c.serial, udid=c.udid)
        return af.attobj([leaf, forger.sub])
    attest_attack("forged chain (same names, other keys)", make)

    def make2(c, token):  # leaf claims the trusted sub as issuer but is signed by another key
        leaf = CA.leaf(c.dev_key, token=token, serial=c.serial, udid=c.udid,
                       issuer_key=forger.sub_key)
        return af.attobj([leaf, CA.sub])
    attest_attack("leaf with forged signature under the trusted sub CA", make2)


@test
def untrusted_root_in_chain():
    other = af.AppleCA("Evil Corp")

    def make(c, token):
        leaf = other.leaf(c.dev_key, token=token, serial=c.serial, udid=c.udid)
        return af.attobj([leaf, other.sub, other.root])
    attest_attack("untrusted root shipped in x5c", make)


@test
def expired_and_future_leaves():
    now = datetime.datetime.now(datetime.timezone.utc)
    d = datetime.timedelta(days=1)
    attest_attack("expired leaf", lambda c, t: good_attobj(c, t, nb=now - 100 * d, na=now - 10 * d))
    attest_attack("not-yet-valid leaf", lambda c, t: good_attobj(c, t, nb=now + d, na=now + 90 * d))


# ---------------------------------------------------------------- nonce binding, identity
@test
def missing_and_wrong_nonce():
    def no_nonce(c, token):
        leaf = CA.leaf(c.dev_key, serial=c.serial, udid=c.udid)
        return af.attobj([leaf, CA.sub])
    attest_attack("attestation without nonce", no_nonce)
    attest_attack("wrong nonce", lambda c, t: good_attobj(c, t + "x"))
    # the nonce DER-wrapped (OCTET STRING inside) is not Apple's encoding
    attest_attack("nonce with inner DER",
                  lambda c, t: af.attobj([CA.leaf(c.dev_key, serial=c.serial, udid=c.udid,
                                                  nonce=b"\x04\x20" + hashlib.sha256(t.encode()).digest()),
                                          CA.sub]))


@test
def reused_token():
    base = certs()
    c = device()
    _, _, _, ch_a = device_order(c)
    _, _, authz_b, ch_b = device_order(c)
    assert ch_a["token"] != ch_b["token"]
    r = answer(c, ch_b, good_attobj(c, ch_a["token"]))
    refused("attestation for challenge A answered to B", r, 400, "badAttestationStatement")
    # and A's attestation sent twice: the second time the challenge is no longer pending
    r = answer(c, ch_a, good_attobj(c, ch_a["token"]))
    assert r.status == 200, r
    r = answer(c, ch_a, good_attobj(c, ch_a["token"]))
    assert r.status >= 400 or r.json().get("status") == "valid", r
    assert certs() == base


@test
def identifier_mismatch():
    def make(c, token):
        leaf = CA.leaf(c.dev_key, token=token, serial=c.serial + "Z", udid=c.udid + "Z")
        return af.attobj([leaf, CA.sub])
    attest_attack("identifier matching neither serial nor UDID", make)


@test
def csr_other_key():
    base = certs()
    c = device()
    order_url, order, authz_url, ch = device_order(c)
    r = answer(c, ch, good_attobj(c, ch["token"]))
    assert r.status == 200, r
    csr = device_csr(c, ec.generate_private_key(ec.SECP384R1()))  # not the attested key
    r = c.post(order["finalize"], {"csr": b64u(csr)})
    refused("CSR key differs from the attested key", r, 400, "badCSR")
    assert certs() == base


# ---------------------------------------------------------------- CBOR shape
@test
def cbor_attacks():
    attest_attack("truncated CBOR", lambda c, t: good_attobj(c, t)[:-40])
    attest_attack("deeply nested CBOR (1000)", lambda c, t: af.attobj_deep(1000))
    attest_attack("indefinite-length CBOR",
                  lambda c, t: af.attobj_indefinite([CA.leaf(c.dev_key, token=t, serial=c.serial,
                                                             udid=c.udid), CA.sub]))

    def dup(c, t):
        good = [CA.leaf(c.dev_key, token=t, serial=c.serial, udid=c.udid), CA.sub]
        evil = [af.AppleCA().leaf(c.dev_key, token=t, serial=c.serial, udid=c.udid)]
        return af.attobj_dupkeys(evil, good)
    attest_attack("duplicate CBOR map keys", dup)

    def dup_top(c, t):
        good = {"x5c": [af.der(CA.leaf(c.dev_key, token=t, serial=c.serial, udid=c.udid)),
                        af.der(CA.sub)]}
        return af.enc(af.map_pairs([("fmt", "none"), ("fmt", "apple"), ("attStmt", good)]))
    attest_attack("duplicate top-level fmt", dup_top)

    def x5c100(c, t):  # small entries: the count limit, not the size limit, refuses it
        leaf = CA.leaf(c.dev_key, token=t, serial=c.serial, udid=c.udid)
        return af.attobj([leaf, CA.sub] + [b"\x30\x03\x02\x01\x00"] * 98)
    attest_attack("x5c with 100 entries", x5c100)

    def x5c100_real(c, t):
        leaf = CA.leaf(c.dev_key, token=t, serial=c.serial, udid=c.udid)
        return af.attobj([leaf] + [CA.sub] * 99)
    attest_attack("x5c with 100 real certificates (~60 KB)", x5c100_real)
    attest_attack("trailing bytes after CBOR", lambda c, t: good_attobj(c, t) + b"\x00")
    attest_attack("fmt none", lambda c, t: af.enc({"fmt": "none", "attStmt": {}}))
    attest_attack("oversized attObj (70 KiB)",
                  lambda c, t: af.enc({"fmt": "apple", "attStmt": {"x5c": [b"\x00" * 70000]}}),
                  want=(400, "malformed"))  # refused before decoding: over the 64 KiB ceiling
    attest_attack("attObj not base64url", lambda c, t: None, want=(400, "malformed"))


# ---------------------------------------------------------------- JWS
@test
def alg_none_and_hs256():
    c = Client(DNSDIR, ROOT)
    assert c.register().status == 201
    url = c.dir["newOrder"]
    payload = b64u(json.dumps({"identifiers": [{"type": "dns", "value": "a.example"}]}))
    for alg, keybytes in (("none", None), ("HS256", json.dumps(c.key.jwk()).encode()),
                          ("HS256", c.key.priv.public_key().public_bytes(
                              serialization.Encoding.DER,
                              serialization.PublicFormat.SubjectPublicKeyInfo))):
        prot = b64u(json.dumps({"alg": alg, "kid": c.kid, "nonce": c.new_nonce(), "url": url}))
        sig = b"" if keybytes is None else hmac.new(keybytes, ("%s.%s" % (prot, payload)).encode(),
                                                    hashlib.sha256).digest()
        r = c.post_raw(url, {"protected": prot, "payload": payload, "signature": b64u(sig)})
        refused("JWS alg %s%s" % (alg, " keyed with the public key" if keybytes else ""), r, 400,
                "badSignatureAlgorithm")
    # alg none on newAccount with a jwk
    k = Key("ES256")
    prot = b64u(json.dumps({"alg": "none", "jwk": k.jwk(), "nonce": c.new_nonce(),
                            "url": c.dir["newAccount"]}))
    r = c.post_raw(c.dir["newAccount"], {"protected": prot, "payload": b64u('{"termsOfServiceAgreed":true}'),
                                         "signature": ""})
    assert r.status == 400 and r.problem_type in ("badSignatureAlgorithm", "malformed"), r
    SEEN.append(("newAccount alg none, empty signature", r.status, r.problem_type))
    # ES256 header over an RS256-looking signature: alg/key mismatch
    r = c.post(url, {"identifiers": [{"type": "dns", "value": "a.example"}]}, alg="RS256")
    refused("alg RS256 with an EC key", r, 400, "badSignatureAlgorithm")


@test
def jwk_and_kid_together():
    c = Client(DNSDIR, ROOT)
    assert c.register().status == 201
    r = c.post(c.dir["newOrder"], {"identifiers": [{"type": "dns", "value": "a.example"}]},
               protected_extra={"jwk": c.key.jwk()})
    refused("jwk and kid together", r, 400, "malformed")


@test
def nonces():
    c = Client(DNSDIR, ROOT)
    assert c.register().status == 201
    url = c.dir["newOrder"]
    pl = {"identifiers": [{"type": "dns", "value": "a.example"}]}
    r = c.post(url, pl, drop=("nonce",))
    refused("missing nonce", r, 400, "badNonce")
    r = c.post(url, pl, nonce=b64u(b"\x01" * 16))
    refused("unknown nonce", r, 400, "badNonce")
    n = c.new_nonce()
    r = c.post(url, pl, nonce=n)
    assert r.status == 201, r
    r = c.post(url, pl, nonce=n)
    refused("replayed nonce", r, 400, "badNonce")
    # the very same signed request replayed byte for byte
    body = json.dumps(c.jws(url, pl)).encode()
    assert c.post_raw(url, body).status == 201
    refused("replayed request", c.post_raw(url, body), 400, "badNonce")


@test
def url_mismatch():
    c = Client(DNSDIR, ROOT)
    assert c.register().status == 201
    jws = c.jws(c.dir["newOrder"], None)  # signed for newOrder, sent to the account URL
    refused("JWS url differs from the request URL", c.post_raw(c.kid, jws), 401, "unauthorized")
    jws = c.jws(c.kid.replace("https://", "http://"), None)
    refused("JWS url with another scheme", c.post_raw(c.kid, jws), 401, "unauthorized")


# ---------------------------------------------------------------- other accounts
@test
def cross_account():
    base = certs()
    a = device()
    order_url, order, authz_url, ch = device_order(a)
    b = device()
    for what, url in (("order", order_url), ("authz", authz_url), ("challenge", ch["url"])):
        r = b.post(url, None)
        refused("another account reads my %s" % what, r, 403, "unauthorized")
    r = b.post(ch["url"], {"attObj": b64u(good_attobj(a, ch["token"]))})
    refused("another account answers my challenge", r, 403, "unauthorized")
    # a answers; b tries to finalize a's order with its own CSR
    assert answer(a, ch, good_attobj(a, ch["token"])).status == 200
    csr = device_csr(a)
    r = b.post(order["finalize"], {"csr": b64u(csr)})
    refused("another account finalizes my order", r, 403, "unauthorized")
    assert certs() == base
    r = a.post(order["finalize"], {"csr": b64u(csr)})
    assert r.status == 200, r
    for _ in range(40):
        o = a.post(order_url, None).json()
        if o["status"] == "valid":
            break
        time.sleep(0.25)
    cert_url = o["certificate"]
    assert a.post(cert_url, None).status == 200
    r = b.post(cert_url, None)
    refused("another account downloads my certificate", r, 403, "unauthorized")
    r = b.post(a.kid, None)
    refused("another account reads my account", r, 403, "unauthorized")
    r = b.post(a.kid, {"status": "deactivated"})
    refused("another account deactivates my account", r, 403, "unauthorized")


# ---------------------------------------------------------------- hostile JSON
@test
def hostile_json():
    c = Client(DNSDIR, ROOT)
    assert c.register().status == 201
    url = c.dir["newOrder"]
    big = {"identifiers": [{"type": "dns", "value": "a.example"}], "pad": "x" * 300000}
    r = c.post(url, big)
    refused("oversized JSON body (400 KB)", r, 413, "malformed")
    deep = "[" * 1000 + "]" * 1000
    r = c.post(url, deep)
    refused("payload JSON nested 1000 deep", r, 400, "malformed")
    r = c.post_raw(url, ('{"protected":' + deep + '}').encode())
    refused("outer JSON nested 1000 deep", r, 400, "malformed")
    r = c.post(url, '{"identifiers":[],"identifiers":[{"type":"dns","value":"a.example"}]}')
    refused("duplicate JSON member", r, 400, "malformed")
    r = c.post_raw(url, b'{"protected":"\xff\xfe","payload":"","signature":""}')
    refused("JWS body not UTF-8", r, 400, "malformed")


def main():
    failed = SUITE.run()
    for name, status, ptype in SEEN:
        print("#   refused: %-55s %d %s" % (name, status, ptype))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
