#!/usr/bin/env python3
"""EAB registration (a wrong MAC first, then the right one) and one http-01 issuance,
for test_secrets.sh. Usage: secrets_flow.py BASE ROOT MGMT_PORT EAB_KID EAB_KEY"""
import hashlib
import hmac
import json
import sys
import time
import urllib.request

from acmelib import Client, b64u, b64u_dec, make_csr

BASE, ROOT, MGMT, KID, KEY = sys.argv[1:6]
c = Client(BASE + "/acme/eab/directory", ROOT)


def eab(key_b64):
    prot = b64u(json.dumps({"alg": "HS256", "kid": KID, "url": c.dir["newAccount"]}))
    pl = b64u(json.dumps(c.key.jwk()))
    mac = hmac.new(b64u_dec(key_b64), ("%s.%s" % (prot, pl)).encode(), hashlib.sha256).digest()
    return {"protected": prot, "payload": pl, "signature": b64u(mac)}


r = c.register(externalAccountBinding=eab(b64u(b"wrong key" * 4)))
assert r.problem_type == "unauthorized", r
r = c.register(externalAccountBinding=eab(KEY))
assert r.status == 201, r
r = c.new_order([("dns", "secret.example")])
assert r.status == 201, r
order_url, order = r.headers["Location"], r.json()
authz = c.post(order["authorizations"][0], None).json()
ch = [x for x in authz["challenges"] if x["type"] == "http-01"][0]
req = urllib.request.Request("http://127.0.0.1:%s/add-http01" % MGMT, data=json.dumps(
    {"token": ch["token"], "content": ch["token"] + "." + c.key.thumbprint()}).encode())
urllib.request.urlopen(req, timeout=10).read()
assert c.post(ch["url"], {}).status == 200
for _ in range(60):
    o = c.post(order_url, None).json()
    if o["status"] in ("ready", "invalid"):
        break
    time.sleep(0.25)
assert o["status"] == "ready", o
_, csr = make_csr(["secret.example"])
assert c.post(order["finalize"], {"csr": b64u(csr)}).status == 200
for _ in range(60):
    o = c.post(order_url, None).json()
    if o["status"] == "valid":
        break
    time.sleep(0.25)
r = c.post(o["certificate"], None)
assert r.status == 200 and b"BEGIN CERTIFICATE" in r.body, r
print("flow: EAB account registered, certificate issued")
