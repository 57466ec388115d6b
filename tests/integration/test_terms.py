#!/usr/bin/env python3
"""Terms of service changes (A-10, RFC 8555 §7.3.3) against the real server, reloaded with
SIGHUP between the steps. Usage: test_terms.py BASE_URL ROOT_PEM TMPDIR PID, where TMPDIR
holds the running config.yaml, attesta.log and the files to reload: v2.yaml (new terms),
broken.yaml (reagree without terms) and v2-reagree.yaml (new terms, reagree, instance).
The tests run in order and build on each other.
"""
import os
import re
import shutil
import signal
import sys
import time

from harness import Suite
from acmelib import Client

BASE, ROOT, TMP, PID = sys.argv[1:5]
DIRURL = BASE + "/acme/default/directory"
TOS1, TOS2, AGREE = "https://ca.test/terms/v1", "https://ca.test/terms/v2", "https://ca.test/agree"
ONE = [("dns", "terms.example.test")]
SUITE = Suite()
test = SUITE.test
S = {}  # what earlier tests leave for later ones


def expect(r, status, ptype=None):
    assert r.status == status, "want %d %s got %r" % (status, ptype or "", r)
    if ptype is not None:
        assert r.problem_type == ptype, "want %s got %r" % (ptype, r)


def log_count(pattern):
    with open(os.path.join(TMP, "attesta.log")) as f:
        return f.read().count(pattern)


def reload(name, pattern="is generation"):
    """Installs TMP/name.yaml as the config, sends SIGHUP and waits for pattern in the log."""
    before = log_count(pattern)
    shutil.copyfile(os.path.join(TMP, name + ".yaml"), os.path.join(TMP, "config.yaml"))
    os.kill(int(PID), signal.SIGHUP)
    for _ in range(100):
        if log_count(pattern) > before:
            return
        time.sleep(0.1)
    raise AssertionError("no %r in the log after reloading %s" % (pattern, name))


def terms_url():
    return Client(DIRURL, ROOT).dir["meta"]["termsOfService"]


def must_agree(r):
    """A-10: 403 userActionRequired, Link to the current terms, instance for the human."""
    expect(r, 403, "userActionRequired")
    links = r.headers.get_all("Link") or []
    assert '<%s>;rel="terms-of-service"' % TOS2 in links, links
    assert any(l.endswith(';rel="index"') for l in links), links
    assert r.json().get("instance") == AGREE, r


@test
def account_agrees_to_v1():
    assert terms_url() == TOS1
    c = Client(DIRURL, ROOT)
    expect(c.post(c.dir["newAccount"], {}, use_jwk=True), 400, "malformed")
    expect(c.register(), 201)
    r = c.new_order(ONE)
    expect(r, 201)
    order = r.json()
    authz = c.post(order["authorizations"][0], None).json()
    S.update(c=c, order=r.headers["Location"], finalize=order["finalize"],
             authz=order["authorizations"][0], chall=authz["challenges"][0]["url"])


@test
def new_terms_alone_lock_nobody_out():
    reload("v2")
    assert terms_url() == TOS2
    expect(S["c"].new_order(ONE), 201)


@test
def reagree_without_terms_refused():
    reload("broken", "reload refused")
    with open(os.path.join(TMP, "attesta.log")) as f:
        log = f.read()
    want = (r"reload refused: \S*config\.yaml:\d+: "
            r"acme\.meta\.terms_of_service_reagree: needs terms_of_service")
    assert re.search(want, log), log[-2000:]
    expect(S["c"].new_order(ONE), 201)


@test
def reagree_refuses_until_agreement():
    reload("v2-reagree")
    c = S["c"]
    must_agree(c.new_order(ONE))
    must_agree(c.post(S["finalize"], {"csr": "AAAA"}))
    must_agree(c.post(S["chall"], {}))
    # Reads and the account itself stay open.
    for url in (S["order"], S["authz"], S["chall"], c.kid):
        expect(c.post(url, None), 200)
    expect(c.post(c.kid, {"contact": ["mailto:terms@example.test"]}), 200)
    must_agree(c.new_order(ONE))


@test
def agreement_by_update_proceeds():
    c = S["c"]
    r = c.post(c.kid, {"termsOfServiceAgreed": True})
    expect(r, 200)
    assert r.json()["status"] == "valid", r
    expect(c.new_order(ONE), 201)


@test
def new_account_agrees_to_v2():
    c = Client(DIRURL, ROOT)
    expect(c.register(), 201)
    expect(c.new_order(ONE), 201)


def main():
    return 1 if SUITE.run() else 0


if __name__ == "__main__":
    sys.exit(main())
