"""Apple-like attestation material for security tests, in Python.

An Apple-like CA (root + sub CA, P-384), device leaves carrying the Apple
OIDs (serial, UDID, nonce = raw SHA-256(token) inside the extension's OCTET
STRING, no inner DER, like tools/fake_apple.c) and a small CBOR encoder that
can also write what a strict decoder must refuse: indefinite lengths,
duplicate keys, deep nesting, truncation.
"""
import datetime
import hashlib
import struct

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

OID_SERIAL = x509.ObjectIdentifier("1.2.840.113635.100.8.9.1")
OID_UDID = x509.ObjectIdentifier("1.2.840.113635.100.8.9.2")
OID_NONCE = x509.ObjectIdentifier("1.2.840.113635.100.8.11.1")


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Attesta Test Apple")])


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _cert(subject, issuer, pub, signer, nb, na, ca=None):
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(pub)
         .serial_number(x509.random_serial_number()).not_valid_before(nb).not_valid_after(na))
    if ca is not None:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=ca), critical=True)
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                            critical=True)
    return b


class AppleCA:
    """Root + sub CA. cn_prefix lets a forger reuse Apple's names with its own keys."""

    def __init__(self, cn_prefix="Attesta Test Apple"):
        now = _now()
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.sub_key = ec.generate_private_key(ec.SECP384R1())
        rn, sn = _name(cn_prefix + " Root CA"), _name(cn_prefix + " Sub CA 1")
        self.root = _cert(rn, rn, self.root_key.public_key(), None, now - datetime.timedelta(hours=1),
                          now + datetime.timedelta(days=3650), ca=None).add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True).add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True).sign(self.root_key, hashes.SHA384())
        self.sub = _cert(sn, rn, self.sub_key.public_key(), None, now - datetime.timedelta(hours=1),
                         now + datetime.timedelta(days=3650), ca=0).sign(self.root_key, hashes.SHA384())

    def save(self, d):
        import os
        os.makedirs(d, exist_ok=True)
        for n, c, k in (("root", self.root, self.root_key), ("sub", self.sub, self.sub_key)):
            open("%s/%s.pem" % (d, n), "wb").write(c.public_bytes(serialization.Encoding.PEM))
            open("%s/%s.key" % (d, n), "wb").write(k.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()))
            os.chmod("%s/%s.key" % (d, n), 0o600)

    @classmethod
    def load(cls, d):
        self = cls.__new__(cls)
        rd = lambda p: open("%s/%s" % (d, p), "rb").read()
        self.root, self.sub = (x509.load_pem_x509_certificate(rd(n + ".pem")) for n in ("root", "sub"))
        self.root_key, self.sub_key = (serialization.load_pem_private_key(rd(n + ".key"), None)
                                       for n in ("root", "sub"))
        return self

    def root_pem(self):
        return self.root.public_bytes(serialization.Encoding.PEM)

    def leaf(self, device_key, token=None, serial=None, udid=None, nonce=None, nb=None, na=None,
             issuer=None, issuer_key=None):
        """A device leaf; nonce defaults to SHA-256(token) when token is given."""
        now = _now()
        nb = nb or now - datetime.timedelta(minutes=5)
        na = na or now + datetime.timedelta(days=90)
        b = (x509.CertificateBuilder().subject_name(_name(hashlib.sha256(str(now).encode()).hexdigest()))
             .issuer_name((issuer or self.sub).subject).public_key(device_key.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(nb).not_valid_after(na)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
        if nonce is None and token is not None:
            nonce = hashlib.sha256(token.encode()).digest()
        for oid, val in ((OID_SERIAL, serial), (OID_UDID, udid), (OID_NONCE, nonce)):
            if val is not None:
                val = val.encode() if isinstance(val, str) else val
                b = b.add_extension(x509.UnrecognizedExtension(oid, val), critical=False)
        return b.sign(issuer_key or self.sub_key, hashes.SHA384())


def der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


# ---------------------------------------------------------------- CBOR
def head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    if n <= 0xFF:
        return bytes([major << 5 | 24, n])
    if n <= 0xFFFF:
        return bytes([major << 5 | 25]) + struct.pack(">H", n)
    if n <= 0xFFFFFFFF:
        return bytes([major << 5 | 26]) + struct.pack(">I", n)
    return bytes([major << 5 | 27]) + struct.pack(">Q", n)


class Raw(bytes):
    """Already-encoded CBOR, spliced in as is."""


def enc(v):
    if isinstance(v, Raw):
        return bytes(v)
    if isinstance(v, bool):
        return b"\xf5" if v else b"\xf4"
    if isinstance(v, int):
        return head(0, v) if v >= 0 else head(1, -1 - v)
    if isinstance(v, (bytes, bytearray)):
        return head(2, len(v)) + bytes(v)
    if isinstance(v, str):
        b = v.encode()
        return head(3, len(b)) + b
    if isinstance(v, list):
        return head(4, len(v)) + b"".join(enc(x) for x in v)
    if isinstance(v, dict):
        return head(5, len(v)) + b"".join(enc(k) + enc(x) for k, x in v.items())
    raise TypeError(type(v))


def map_pairs(pairs):
    """A map from a list of (key, value), so keys may repeat."""
    return Raw(head(5, len(pairs)) + b"".join(enc(k) + enc(v) for k, v in pairs))


def attobj(certs, fmt="apple"):
    return enc({"fmt": fmt, "attStmt": {"x5c": [der(c) if not isinstance(c, bytes) else c for c in certs]}})


def attobj_indefinite(certs):
    """Same content, with an indefinite-length x5c array and map."""
    x5c = b"\x9f" + b"".join(enc(der(c)) for c in certs) + b"\xff"
    att = b"\xbf" + enc("x5c") + x5c + b"\xff"
    return enc({"fmt": "apple", "attStmt": Raw(att)})


def attobj_dupkeys(certs_a, certs_b):
    """attStmt with x5c twice: a lax decoder takes one of them."""
    st = map_pairs([("x5c", [der(c) for c in certs_a]), ("x5c", [der(c) for c in certs_b])])
    return enc({"fmt": "apple", "attStmt": st})


def attobj_deep(depth=1000):
    inner = b"\x81" * depth + b"\x00"
    return enc({"fmt": "apple", "attStmt": {"x5c": Raw(inner)}})
