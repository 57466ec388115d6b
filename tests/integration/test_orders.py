#!/usr/bin/env python3
"""Authorization reuse (S-4) and the orders list in pages (L-3) against the real server.
Usage: test_orders.py BASE_URL ROOT_PEM MGMT_PORT [NOREUSE_BASE_URL NOREUSE_ROOT_PEM]
(a second server configured with acme.authz_reuse: false; "-" or absent skips those tests)
"""
import json
import re
import sys
import time
import urllib.request

from harness import Suite
from acmelib import Client, b64u, make_csr

BASE, ROOT, MGMT = sys.argv[1:4]
NOREUSE = sys.argv[4:6] if len(sys.argv) > 5 and sys.argv[4] != "-" else None
PAGE, NORDERS = 100, 250
SUITE = Suite()
test = SUITE.test


def ok(r, status=200):
    assert r.status == status, "want %d got %r" % (status, r)
    return r


def refused(r, status, ptype):
    assert r.status == status and r.problem_type == ptype, "want %d %s got %r" % (status, ptype, r)


def account(base=BASE, root=ROOT):
    c = Client(base + "/acme/default/directory", root)
    ok(c.register(), 201)
    return c


def wait_status(c, url, done):
    for _ in range(80):
        body = c.post(url, None).json()
        if body["status"] in done:
            return body
        time.sleep(0.25)
    raise AssertionError("%s stuck at %r" % (url, body))


def validated(c, name):
    """An order for name whose http-01 challenge pebble-challtestsrv answers; once ready,
    returns its URL and body."""
    r = ok(c.new_order([("dns", name)]), 201)
    url = r.headers["Location"]
    authz = c.post(r.json()["authorizations"][0], None).json()
    ch = next(x for x in authz["challenges"] if x["type"] == "http-01")
    body = json.dumps({"token": ch["token"], "content": ch["token"] + "." + c.key.thumbprint()})
    urllib.request.urlopen(urllib.request.Request(
        "http://127.0.0.1:%s/add-http01" % MGMT, data=body.encode()), timeout=10).read()
    ok(c.post(ch["url"], {}))
    assert wait_status(c, url, ("ready", "invalid"))["status"] == "ready"
    return url, c.post(url, None).json()


# ---------------------------------------------------------------- authorization reuse (S-4)
@test
def second_order_reuses_authz_and_is_ready():
    c = account()
    _, first = validated(c, "reuse.example.test")
    r = ok(c.new_order([("dns", "reuse.example.test")]), 201)
    order = r.json()
    assert order["status"] == "ready", order
    assert order["authorizations"] == first["authorizations"], (order, first)
    authz = ok(c.post(order["authorizations"][0], None)).json()
    assert authz["status"] == "valid", authz
    assert order["expires"] <= authz["expires"], (order, authz)
    _, csr = make_csr(["reuse.example.test"])
    ok(c.post(order["finalize"], {"csr": b64u(csr)}))
    done = wait_status(c, r.headers["Location"], ("valid", "invalid"))
    assert done["status"] == "valid", done
    pem = ok(c.post(done["certificate"], None)).body
    assert pem.count(b"BEGIN CERTIFICATE") >= 2, pem
    # A mixed order reuses one and asks for the other; another account reuses nothing.
    mixed = ok(c.new_order([("dns", "reuse.example.test"), ("dns", "new.example.test")]), 201).json()
    assert mixed["status"] == "pending" and mixed["authorizations"][0] == first["authorizations"][0]
    other = ok(account().new_order([("dns", "reuse.example.test")]), 201).json()
    assert other["status"] == "pending" and other["authorizations"] != first["authorizations"]


@test
def deactivating_a_reused_authz_invalidates_both_orders():
    c = account()
    url1, first = validated(c, "deact.example.test")
    r = ok(c.new_order([("dns", "deact.example.test")]), 201)
    assert r.json()["authorizations"] == first["authorizations"], r
    ok(c.post(first["authorizations"][0], {"status": "deactivated"}))
    for url in (url1, r.headers["Location"]):
        assert c.post(url, None).json()["status"] == "invalid", url
    again = ok(c.new_order([("dns", "deact.example.test")]), 201).json()
    assert again["status"] == "pending" and again["authorizations"] != first["authorizations"]


@test
def reuse_off_gives_fresh_authz():
    if NOREUSE is None:
        print("# skipped: no server with acme.authz_reuse: false")
        return
    c = account(*NOREUSE)
    _, first = validated(c, "noreuse.example.test")
    order = ok(c.new_order([("dns", "noreuse.example.test")]), 201).json()
    assert order["status"] == "pending", order
    assert order["authorizations"] != first["authorizations"], order


# ---------------------------------------------------------------- orders list pages (L-3)
def next_link(r):
    for v in r.headers.get_all("Link") or []:
        m = re.fullmatch(r'<([^>]*)>;rel="next"', v.strip())
        if m:
            return m.group(1)
    return None


@test
def orders_list_pages_cover_every_order_once():
    c = account()
    made = {ok(c.new_order([("dns", "page%d.example.test" % i)]), 201).headers["Location"]
            for i in range(NORDERS)}
    orders_url = c.post(c.kid, None).json()["orders"]
    url, listed, pages, late = orders_url, [], 0, set()
    while url:
        r = ok(c.post(url, None))
        page = r.json()["orders"]
        assert len(page) <= PAGE, len(page)
        listed += page
        pages += 1
        url = next_link(r)
        assert url is None or url.startswith(orders_url + "?cursor="), url
        # An order made meanwhile shifts nothing; made in the cursor's second it may
        # sort after the cursor and be listed (once), otherwise it comes before it.
        late.add(ok(c.new_order([("dns", "late%d.example.test" % pages)]), 201).headers["Location"])
    assert pages == 3, pages
    assert len(listed) == len(set(listed)), "duplicates in the list"
    assert made <= set(listed) <= made | late, (len(listed), len(made))


@test
def orders_list_refuses_malformed_cursors():
    c = account()
    orders_url = c.post(c.kid, None).json()["orders"]
    for q in ("cursor=%25%25", "cursor=AAAA", "cursor=", "page=2"):
        refused(c.post(orders_url + "?" + q, None), 400, "malformed")
    # The query is part of the URL the client signs (RFC 8555 §6.4).
    body = json.dumps(c.jws(orders_url, None)).encode()
    r = c.request("POST", orders_url + "?cursor=AAAA", body)
    refused(r, 401, "unauthorized")


def main():
    return 1 if SUITE.run() else 0


if __name__ == "__main__":
    sys.exit(main())
