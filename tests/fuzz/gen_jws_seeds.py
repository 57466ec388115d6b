#!/usr/bin/env python3
"""Writes the fuzz_jws / fuzz_json seeds: flattened JWS bodies signed with fresh
ES256, ES384, RS256 and EdDSA keys (jwk and kid forms, POST-as-GET, a keyChange
inner JWS). Re-run only to refresh: python3 tests/fuzz/gen_jws_seeds.py"""
import base64, json, os, sys
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa, ed25519, padding, utils

def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

def num(i, n=None):
    n = n or (i.bit_length() + 7) // 8
    return b64u(i.to_bytes(n, "big"))

def jwk_of(key):
    if isinstance(key, ec.EllipticCurvePrivateKey):
        p = key.public_key().public_numbers()
        size = (key.curve.key_size + 7) // 8
        crv = {256: "P-256", 384: "P-384", 521: "P-521"}[key.curve.key_size]
        return {"kty": "EC", "crv": crv, "x": num(p.x, size), "y": num(p.y, size)}
    if isinstance(key, rsa.RSAPrivateKey):
        p = key.public_key().public_numbers()
        return {"kty": "RSA", "n": num(p.n), "e": num(p.e)}
    raw = key.public_key().public_bytes_raw()
    return {"kty": "OKP", "crv": "Ed25519", "x": b64u(raw)}

def sign(key, alg, data):
    if alg.startswith("ES"):
        h = {"ES256": hashes.SHA256(), "ES384": hashes.SHA384(), "ES512": hashes.SHA512()}[alg]
        r, s = utils.decode_dss_signature(key.sign(data, ec.ECDSA(h)))
        size = (key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if alg == "RS256":
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return key.sign(data)

def jws(key, alg, payload, url, nonce="abcdefghijklmnopqrstuv", kid=None, jwk=True,
        parts=False):
    prot = {"alg": alg, "url": url}
    if nonce is not None:
        prot["nonce"] = nonce
    if kid:
        prot["kid"] = kid
    elif jwk:
        prot["jwk"] = jwk_of(key)
    p = b64u(json.dumps(prot).encode())
    pl = "" if payload is None else b64u(json.dumps(payload).encode())
    sig = sign(key, alg, (p + "." + pl).encode())
    if parts:
        # fuzz_jws's second input form: PROTECTED \0 PAYLOAD \0 SIGNATURE, raw bytes.
        raw = b"" if payload is None else json.dumps(payload).encode()
        return json.dumps(prot).encode() + b"\0" + raw + b"\0" + sig
    return json.dumps({"protected": p, "payload": pl, "signature": b64u(sig)}).encode()

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")
base = "https://ca.example.com/acme/default/"
p256, p384 = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP384R1())
rsa2048, ed = rsa.generate_private_key(65537, 2048), ed25519.Ed25519PrivateKey.generate()
seeds = {
    "new_account_es256": jws(p256, "ES256", {"termsOfServiceAgreed": True,
                                             "contact": ["mailto:a@example.com"]},
                             base + "new-account"),
    "new_account_es384": jws(p384, "ES384", {"termsOfServiceAgreed": True}, base + "new-account"),
    "new_account_rs256": jws(rsa2048, "RS256", {"onlyReturnExisting": True}, base + "new-account"),
    "new_account_eddsa": jws(ed, "EdDSA", {"termsOfServiceAgreed": True}, base + "new-account"),
    "new_order_kid": jws(p256, "ES256", {"identifiers": [{"type": "dns", "value": "a.example"}]},
                         base + "new-order", kid=base + "account/AAAAAAAAAAAAAAAAAAAAAA"),
    "post_as_get": jws(p256, "ES256", None, base + "order/BBBBBBBBBBBBBBBBBBBBBB",
                       kid=base + "account/AAAAAAAAAAAAAAAAAAAAAA"),
    "key_change_inner": jws(p384, "ES384", {"account": base + "account/AAAAAAAAAAAAAAAAAAAAAA",
                                            "oldKey": jwk_of(p256)},
                            base + "key-change", nonce=None),
    "parts_es256_jwk": jws(p256, "ES256", {"termsOfServiceAgreed": True}, base + "new-account",
                           parts=True),
    "parts_rs256_kid": jws(rsa2048, "RS256", None, base + "cert/00",
                           kid=base + "account/AAAAAAAAAAAAAAAAAAAAAA", parts=True),
    "parts_eddsa_inner": jws(ed, "EdDSA", {"account": base + "account/A", "oldKey": jwk_of(p384)},
                             base + "key-change", nonce=None, parts=True),
    "alg_none": b'{"protected":"eyJhbGciOiJub25lIn0","payload":"","signature":""}',
    "header_member": b'{"protected":"e30","header":{},"payload":"","signature":""}',
}
for name, body in seeds.items():
    ext = ".bin" if name.startswith("parts_") else ".json"
    with open(os.path.join(out, "jws", name + ext), "wb") as f:
        f.write(body)
json_seeds = {
    "object": b'{"a":[1,2.5e3,-0,true,false,null],"b":{"c":"\\u00e9\\ud83d\\ude00"}}',
    "dup_key": b'{"a":1,"a":2}',
    "deep": b'[' * 17 + b']' * 17,
    "trailing": b'{} x',
    "utf8_bad": b'{"a":"\xc3\x28"}',
    "jws": seeds["new_order_kid"],
}
for name, body in json_seeds.items():
    with open(os.path.join(out, "json", name + ".json"), "wb") as f:
        f.write(body)
