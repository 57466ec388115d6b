#!/usr/bin/env python3
"""CH-4/CH-5 against the real server (acme.challenges.attempts 3, retry_delay RETRY_DELAY):
during retries a challenge is `processing` with the last failed try's `error` and
Retry-After on challenge and authorization answers. With MODE "early" (retry_delay 10 s),
CH-6 instead: a re-POST while a retry waits runs it at once, once per gap; re-POSTs
within the gap get 429 rateLimited. Usage:
test_chall_retry.py BASE_URL ROOT_PEM MGMT_PORT RETRY_DELAY [early]
"""
import json
import sys
import time
import urllib.request

from harness import Suite
from acmelib import Client

BASE, ROOT, MGMT = sys.argv[1:4]
RETRY_DELAY = int(sys.argv[4])
MODE = sys.argv[5] if len(sys.argv) > 5 else "retry"
NS = "urn:ietf:params:acme:error:"
SUITE, EARLY = Suite(), Suite()
test, early = SUITE.test, EARLY.test


def mgmt(path, obj):
    req = urllib.request.Request("http://127.0.0.1:%s/%s" % (MGMT, path), data=json.dumps(obj).encode())
    urllib.request.urlopen(req, timeout=10).read()


def registered():
    c = Client(BASE + "/acme/default/directory", ROOT)
    r = c.register()
    assert r.status == 201, r
    return c


def started(c, name, kind):
    """Orders name and answers its challenge of type kind without publishing anything.
    Returns the authz URL, the challenge and the answer."""
    r = c.new_order([("dns", name)])
    assert r.status == 201, r
    authz_url = r.json()["authorizations"][0]
    ch = [x for x in c.post(authz_url, None).json()["challenges"] if x["type"] == kind][0]
    r = c.post(ch["url"], {})
    assert r.status == 200, r
    return authz_url, ch, r


def retry_after(r):
    ra = r.headers.get("Retry-After")
    assert ra is not None and ra.isdigit(), "Retry-After %r on %r" % (ra, r)
    return int(ra)


def check_retrying(r, etype):
    """A challenge answer during retries: processing, the try's error, Retry-After up to the next try."""
    body = r.json()
    assert body["status"] == "processing", body
    assert body["error"]["type"] == NS + etype and body["error"].get("detail"), body
    assert 1 <= retry_after(r) <= RETRY_DELAY + 1, r.headers
    assert "retryAt" not in body, body


def until_error(c, url):
    """POST-as-GET url until the first failed try shows (it fails at once: nothing is served)."""
    deadline = time.monotonic() + RETRY_DELAY
    while True:
        r = c.post(url, None)
        if r.json().get("error") or time.monotonic() > deadline:
            return r
        time.sleep(0.05)


def until_final(c, url):
    deadline = time.monotonic() + 4 * RETRY_DELAY + 15
    while True:
        r = c.post(url, None)
        if r.json()["status"] not in ("pending", "processing"):
            return r
        assert time.monotonic() < deadline, r.json()
        time.sleep(0.2)


@test
def http01_served_after_first_try_ends_valid():
    c = registered()
    authz_url, ch, answer = started(c, "late.retry.test", "http-01")
    # The answer waits answer_wait (250 ms) at most; the first try has usually failed by then.
    assert answer.json()["status"] == "processing", answer
    assert retry_after(answer) >= 1, answer.headers
    if answer.json().get("error"):
        check_retrying(answer, "incorrectResponse")
    r = until_error(c, ch["url"])
    check_retrying(r, "incorrectResponse")  # challtestsrv serves an empty body for an unknown token
    az = c.post(authz_url, None)
    assert az.json()["status"] == "pending", az
    assert 1 <= retry_after(az) <= RETRY_DELAY + 1, az.headers
    [shown] = [x for x in az.json()["challenges"] if x["url"] == ch["url"]]
    assert shown["status"] == "processing" and shown["error"]["type"] == NS + "incorrectResponse", shown
    mgmt("add-http01", {"token": ch["token"], "content": ch["token"] + "." + c.key.thumbprint()})
    final = until_final(c, ch["url"])
    assert final.json()["status"] == "valid", final.json()
    assert "error" not in final.json() and "Retry-After" not in final.headers, final
    assert c.post(authz_url, None).json()["status"] == "valid"


@test
def dns01_never_published_ends_invalid():
    c = registered()
    authz_url, ch, _ = started(c, "never.retry.test", "dns-01")
    r = until_error(c, ch["url"])
    etype = "incorrectResponse"  # NOERROR, no TXT record: E-13 (NXDOMAIN would be `dns`)
    check_retrying(r, etype)
    t0 = time.monotonic()
    final = until_final(c, ch["url"])
    # Two more tries, RETRY_DELAY apart: it gave up only after retrying.
    assert time.monotonic() - t0 >= RETRY_DELAY, time.monotonic() - t0
    body = final.json()
    assert body["status"] == "invalid" and body["error"]["type"] == NS + etype, body
    assert "Retry-After" not in final.headers, final
    assert c.post(authz_url, None).json()["status"] == "invalid"


@early
def http01_repost_brings_retry_forward():
    """The answer appears after the first try failed; the client's re-POST runs the next try
    at once, so the challenge is valid long before the RETRY_DELAY (10 s) retry was due."""
    c = registered()
    authz_url, ch, _ = started(c, "early.retry.test", "http-01")
    r = until_error(c, ch["url"])
    check_retrying(r, "incorrectResponse")
    mgmt("add-http01", {"token": ch["token"], "content": ch["token"] + "." + c.key.thumbprint()})
    t0 = time.monotonic()
    r = c.post(ch["url"], {})
    assert r.status == 200, r
    # answer_wait (250 ms) usually sees the early try settle; if not, poll at once (CH-5).
    if r.json()["status"] == "processing":
        assert retry_after(r) == 1, r.headers
    else:
        assert r.json()["status"] == "valid", r.json()
    final = until_final(c, ch["url"])
    took = time.monotonic() - t0
    assert final.json()["status"] == "valid", final.json()
    assert took < RETRY_DELAY / 2, took
    assert c.post(authz_url, None).json()["status"] == "valid"


@early
def quick_reposts_bring_one_retry_forward():
    """20 quick re-POSTs of a never-served answer: one early try (the .sh counts them in the
    log), the others 429 rateLimited with Retry-After up to the gap's end (5 s), and the
    last try keeps its schedule."""
    c = registered()
    _, ch, _ = started(c, "hammer.retry.test", "http-01")
    check_retrying(until_error(c, ch["url"]), "incorrectResponse")
    r = c.post(ch["url"], {})
    assert r.status == 200 and r.json()["status"] == "processing", r
    assert r.json().get("error") and retry_after(r) >= 1, r
    for _ in range(19):
        r = c.post(ch["url"], {})
        assert r.status == 429 and r.problem_type == "rateLimited", r
        assert "too soon" in r.json().get("detail", ""), r.json()
        assert 1 <= retry_after(r) <= RETRY_DELAY // 2, r.headers
    # Reads are not limited.
    r = c.post(ch["url"], None)
    assert r.status == 200 and r.json()["status"] == "processing", r
    time.sleep(1)
    r = c.post(ch["url"], None)
    assert r.json()["status"] == "processing", r.json()  # try 3 still waits its 10 s
    assert retry_after(r) > 1, r.headers


def main():
    return 1 if (EARLY if MODE == "early" else SUITE).run() else 0


if __name__ == "__main__":
    sys.exit(main())
