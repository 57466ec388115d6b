#!/usr/bin/env python3
"""Client side of test_nonce_restart.sh. Usage:
  nonce_flow.py nonces DIRURL ROOT COUNT   print COUNT fresh nonces, one a line
  nonce_flow.py use DIRURL ROOT NONCE      newAccount (fresh key) signed with NONCE:
                                           prints "201", or "STATUS PROBLEM-TYPE"
  nonce_flow.py key STATE_FILE             hex of the HMAC key in a nonces.state file
  nonce_flow.py nokey KEY_HEX FILE...      fails when any FILE holds the key, raw or encoded
"""
import base64
import sys

from acmelib import Client


def use(c, nonce):
    r = c.post(c.dir["newAccount"], {"termsOfServiceAgreed": True}, use_jwk=True, nonce=nonce)
    return "%d" % r.status if r.status == 201 else "%d %s" % (r.status, r.problem_type)


def nokey(key_hex, files):
    key = bytes.fromhex(key_hex)
    forms = [key, key.hex().encode(), key.hex().upper().encode(),
             base64.b64encode(key).rstrip(b"="), base64.urlsafe_b64encode(key).rstrip(b"=")]
    for f in files:
        data = open(f, "rb").read()
        for s in forms:
            if s in data:
                raise SystemExit("nonce key (%d-byte form) found in %s" % (len(s), f))


def main(argv):
    cmd = argv[1]
    if cmd == "nonces":
        c = Client(argv[2], argv[3])
        for _ in range(int(argv[4])):
            print(c.new_nonce())
    elif cmd == "use":
        print(use(Client(argv[2], argv[3]), argv[4]))
    elif cmd == "key":
        data = open(argv[2], "rb").read()
        assert data[:8] == b"ATNONCE\n", "not a nonce state file"
        print(data[16:48].hex())
    elif cmd == "nokey":
        nokey(argv[2], argv[3:])
    else:
        raise SystemExit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
