"""A small, deliberately malleable ACME client for protocol tests.

It signs flattened JWS with EC, RSA or Ed25519 keys (python3-cryptography) and lets a
test change any part of a request: header members, payload, signature, content type,
URL, so each refusal the server owes can be provoked exactly.
"""
import base64
import hashlib
import json
import ssl
import urllib.error
import urllib.request

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography import x509
from cryptography.x509.oid import NameOID


def b64u(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_dec(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _int_b64u(n, size=None):
    size = size or (n.bit_length() + 7) // 8
    return b64u(n.to_bytes(size, "big"))


class Key:
    """An account or certificate key with its JWK and JWS signer."""

    def __init__(self, kind="ES256"):
        self.alg = kind
        if kind == "ES256":
            self.priv = ec.generate_private_key(ec.SECP256R1())
        elif kind == "ES384":
            self.priv = ec.generate_private_key(ec.SECP384R1())
        elif kind == "RS256":
            self.priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif kind == "EdDSA":
            self.priv = ed25519.Ed25519PrivateKey.generate()
        else:
            raise ValueError(kind)

    def jwk(self):
        pub = self.priv.public_key()
        if isinstance(pub, ec.EllipticCurvePublicKey):
            nums = pub.public_numbers()
            size = (pub.curve.key_size + 7) // 8
            crv = {256: "P-256", 384: "P-384"}[pub.curve.key_size]
            return {"crv": crv, "kty": "EC", "x": _int_b64u(nums.x, size), "y": _int_b64u(nums.y, size)}
        if isinstance(pub, rsa.RSAPublicKey):
            nums = pub.public_numbers()
            return {"e": _int_b64u(nums.e), "kty": "RSA", "n": _int_b64u(nums.n)}
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"crv": "Ed25519", "kty": "OKP", "x": b64u(raw)}

    def thumbprint(self):
        canon = json.dumps(self.jwk(), sort_keys=True, separators=(",", ":"))
        return b64u(hashlib.sha256(canon.encode()).digest())

    def sign(self, data):
        if self.alg in ("ES256", "ES384"):
            h = hashes.SHA256() if self.alg == "ES256" else hashes.SHA384()
            r, s = decode_dss_signature(self.priv.sign(data, ec.ECDSA(h)))
            size = 32 if self.alg == "ES256" else 48
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")
        if self.alg == "RS256":
            return self.priv.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return self.priv.sign(data)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body) if self.body else None

    @property
    def problem_type(self):
        try:
            t = self.json().get("type", "")
        except Exception:
            return None
        return t.replace("urn:ietf:params:acme:error:", "")

    def __repr__(self):
        return "<%d %s %r>" % (self.status, dict(self.headers), self.body[:300])


class Client:
    def __init__(self, directory_url, root_pem, key=None):
        self.ctx = ssl.create_default_context(cafile=root_pem)
        self.directory_url = directory_url
        self.key = key or Key("ES256")
        self.kid = None
        self.nonce = None
        self.dir = self.get(directory_url).json()

    # ---- transport ----
    def request(self, method, url, body=None, content_type="application/jose+json", headers=None):
        req = urllib.request.Request(url, data=body, method=method)
        if body is not None and content_type:
            req.add_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=30) as r:
                resp = Response(r.status, r.headers, r.read())
        except urllib.error.HTTPError as e:
            resp = Response(e.code, e.headers, e.read())
        if resp.headers.get("Replay-Nonce"):
            self.nonce = resp.headers["Replay-Nonce"]
        return resp

    def get(self, url, **kw):
        return self.request("GET", url, **kw)

    def new_nonce(self):
        r = self.request("HEAD", self.dir["newNonce"])
        return r.headers["Replay-Nonce"]

    # ---- JWS ----
    def jws(self, url, payload, key=None, use_jwk=None, protected_extra=None, drop=(),
            nonce=None, alg=None):
        key = key or self.key
        if use_jwk is None:
            use_jwk = self.kid is None
        prot = {"alg": alg or key.alg, "nonce": nonce or self.nonce or self.new_nonce(), "url": url}
        if use_jwk:
            prot["jwk"] = key.jwk()
        else:
            prot["kid"] = self.kid
        prot.update(protected_extra or {})
        for d in drop:
            prot.pop(d, None)
        p64 = b64u(json.dumps(prot))
        if payload is None:
            pl64 = ""
        elif isinstance(payload, (bytes, str)):
            pl64 = b64u(payload)
        else:
            pl64 = b64u(json.dumps(payload))
        sig = key.sign(("%s.%s" % (p64, pl64)).encode())
        self.nonce = None
        return {"protected": p64, "payload": pl64, "signature": b64u(sig)}

    def post(self, url, payload, **kw):
        ctype = kw.pop("content_type", "application/jose+json")
        body = json.dumps(self.jws(url, payload, **kw)).encode()
        return self.request("POST", url, body, content_type=ctype)

    def post_raw(self, url, obj, content_type="application/jose+json"):
        body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        return self.request("POST", url, body, content_type=content_type)

    # ---- flows ----
    def register(self, **extra):
        payload = {"termsOfServiceAgreed": True}
        payload.update(extra)
        r = self.post(self.dir["newAccount"], payload, use_jwk=True)
        if r.status in (200, 201):
            self.kid = r.headers["Location"]
        return r

    def new_order(self, identifiers):
        ids = [{"type": t, "value": v} for t, v in identifiers]
        return self.post(self.dir["newOrder"], {"identifiers": ids})


def make_csr(names, key=None, cn=None):
    key = key or ec.generate_private_key(ec.SECP256R1())
    b = x509.CertificateSigningRequestBuilder()
    b = b.subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn or names[0])]))
    b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    csr = b.sign(key, hashes.SHA256())
    return key, csr.public_bytes(serialization.Encoding.DER)
