#!/usr/bin/env python3
"""ACME Renewal Information (RFC 9773) against the real server: renewalInfo, and newOrder
`replaces` (ARI-9 to ARI-12, E-26), including several orders racing to replace one
certificate.
Usage: test_ari.py BASE_URL ROOT_PEM MGMT_PORT
"""
import hashlib
import json
import sys
import threading
import time
import urllib.request

from cryptography import x509

from harness import Suite
from acmelib import Client, b64u, make_csr

BASE, ROOT, MGMT = sys.argv[1:4]
DIRECTORY = BASE + "/acme/default/directory"
RACERS = 8
ABSENT = object()
SUITE = Suite()
test = SUITE.test


def expect(r, status, ptype=None):
    assert r.status == status and (ptype is None or r.problem_type == ptype), \
        "want %d %s got %r" % (status, ptype, r)
    return r


def account(key=None):
    c = Client(DIRECTORY, ROOT, key)
    assert c.register().status in (200, 201)
    return c


def poll(c, url, done):
    for _ in range(80):
        body = expect(c.post(url, None), 200).json()
        if body["status"] in done:
            return body
        time.sleep(0.25)
    raise AssertionError("%s stuck at %r" % (url, body))


def order(c, names, replaces=ABSENT):
    payload = {"identifiers": [{"type": "dns", "value": n} for n in names]}
    if replaces is not ABSENT:
        payload["replaces"] = replaces
    return c.post(c.dir["newOrder"], payload)


def finish(c, r, names):
    """Validates (dns-01 through pebble-challtestsrv) and finalizes the order of response r;
    returns the final order body and the certificate PEM."""
    url, body = r.headers["Location"], r.json()
    for az_url in body["authorizations"]:
        az = c.post(az_url, None).json()
        if az["status"] == "valid":
            continue
        ch = next(x for x in az["challenges"] if x["type"] == "dns-01")
        txt = b64u(hashlib.sha256(
            (ch["token"] + "." + c.key.thumbprint()).encode()).digest())
        urllib.request.urlopen(urllib.request.Request(
            "http://127.0.0.1:%s/set-txt" % MGMT, data=json.dumps(
                {"host": "_acme-challenge.%s." % az["identifier"]["value"], "value": txt}
            ).encode()), timeout=10).read()
        expect(c.post(ch["url"], {}), 200)
    assert poll(c, url, ("ready", "invalid"))["status"] == "ready"
    _, csr = make_csr(names)
    expect(c.post(body["finalize"], {"csr": b64u(csr)}), 200)
    done = poll(c, url, ("valid", "invalid"))
    assert done["status"] == "valid", done
    return done, expect(c.post(done["certificate"], None), 200).body


def issued(c, names):
    return finish(c, expect(order(c, names), 201), names)[1]


def cert_id(pem):
    """RFC 9773 §4.1: base64url(AKI keyIdentifier) "." base64url(serial content octets)."""
    cert = x509.load_pem_x509_certificate(pem)
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    n = cert.serial_number
    return b64u(aki.key_identifier) + "." + b64u(n.to_bytes((n.bit_length() + 8) // 8, "big"))


@test
def renewal_info_then_replaces_shown_everywhere():
    c = account()
    cid = cert_id(issued(c, ["one.ari.test"]))
    r = expect(c.get(c.dir["renewalInfo"] + "/" + cid), 200)
    assert "suggestedWindow" in r.json(), r
    r = expect(order(c, ["one.ari.test"], cid), 201)
    assert r.json()["replaces"] == cid, r
    url = r.headers["Location"]
    assert c.post(url, None).json()["replaces"] == cid
    # Issued: the certificate is replaced for good; the order still shows what it replaced.
    done, _ = finish(c, r, ["one.ari.test"])
    assert done["replaces"] == cid, done
    expect(order(c, ["one.ari.test"], cid), 409, "alreadyReplaced")
    # renewalInfo keeps answering for the replaced certificate.
    expect(c.get(c.dir["renewalInfo"] + "/" + cid), 200)


@test
def refusals():
    c = account()
    cid = cert_id(issued(c, ["two.ari.test"]))
    for bad in ("nodot", cid + "=", cid.replace(".", ".."), 7, None, ""):
        expect(order(c, ["two.ari.test"], bad), 400, "malformed")
    expect(order(c, ["two.ari.test"], "AAAA.AAAA"), 404, "malformed")
    expect(order(account(), ["two.ari.test"], cid), 403, "unauthorized")
    expect(order(c, ["other.ari.test"], cid), 400, "malformed")
    # None of these marked it: a proper renewal still goes through.
    expect(order(c, ["two.ari.test", "extra.ari.test"], cid), 201)


@test
def invalid_replacing_order_frees_the_certificate():
    c = account()
    cid = cert_id(issued(c, ["three.ari.test"]))
    first = expect(order(c, ["three.ari.test"], cid), 201).json()
    expect(order(c, ["three.ari.test"], cid), 409, "alreadyReplaced")
    # Deactivating its authorization makes the replacing order invalid.
    expect(c.post(first["authorizations"][0], {"status": "deactivated"}), 200)
    again = expect(order(c, ["three.ari.test"], cid), 201)
    assert again.json()["replaces"] == cid, again


@test
def racing_orders_exactly_one_wins():
    c = account()
    cid = cert_id(issued(c, ["race.ari.test"]))
    racers = []
    for _ in range(RACERS):
        rc = Client(DIRECTORY, ROOT, c.key)
        rc.kid = c.kid
        payload = {"identifiers": [{"type": "dns", "value": "race.ari.test"}], "replaces": cid}
        racers.append((rc, json.dumps(rc.jws(rc.dir["newOrder"], payload)).encode()))
    gate, results = threading.Barrier(RACERS), [None] * RACERS

    def run(i):
        rc, body = racers[i]
        gate.wait()
        results[i] = rc.post_raw(rc.dir["newOrder"], body)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [r for r in results if r.status == 201]
    lost = [r for r in results if r.status == 409 and r.problem_type == "alreadyReplaced"]
    assert len(won) == 1 and len(lost) == RACERS - 1, results


def main():
    return 1 if SUITE.run() else 0


if __name__ == "__main__":
    sys.exit(main())
