#!/usr/bin/env python3
"""Crash safety: N concurrent http-01 issuances, SIGKILL of the server in the middle,
restart on the same data. Every certificate a client was told about before the kill
must be stored and downloadable by its account, no order may stay `processing`, and a
nonce handed out before the kill must be refused (badNonce) afterwards.

Usage: test_crash.py ATTESTA_BIN CONFIG DATA_DIR PORT MGMT_PORT ROOT_PEM_OUT_DIR
Env: CRASH_CLIENTS (default 200), CRASH_KILL_AFTER (kill once this many certificates were
handed out, one round each, default "1,50,120": early, middle and late in the run).
"""
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import json
import urllib.request

from acmelib import Client, make_csr, b64u

BIN, CONFIG, DATA, PORT, MGMT, LOGDIR = sys.argv[1:7]
BASE = "https://127.0.0.1:%s" % PORT
DIRURL = BASE + "/acme/default/directory"
ROOT = os.path.join(DATA, "root.pem")
CLIENTS = int(os.environ.get("CRASH_CLIENTS", "200"))
KILL_AFTER = [int(x) for x in os.environ.get("CRASH_KILL_AFTER", "1,50,120").split(",")]


def log(*a):
    print("#", *a, flush=True)


def start(tag):
    out = open(os.path.join(LOGDIR, "crash-%s.out" % tag), "w")
    err = open(os.path.join(LOGDIR, "crash-%s.log" % tag), "w")
    p = subprocess.Popen([BIN, "serve", "-c", CONFIG], stdout=out, stderr=err)
    for _ in range(200):
        if p.poll() is not None:
            raise SystemExit("attesta exited at start (%s): see %s" % (tag, err.name))
        try:
            if os.path.exists(ROOT):
                Client(DIRURL, ROOT)
                return p
        except Exception:
            pass
        time.sleep(0.05)
    raise SystemExit("attesta did not come up (%s)" % tag)


def mgmt(path, obj):
    req = urllib.request.Request("http://127.0.0.1:%s/%s" % (MGMT, path), data=json.dumps(obj).encode())
    urllib.request.urlopen(req, timeout=10).read()


def db_query(sql):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(DATA, "attesta.db"), uri=True, timeout=10)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


class Issuer(threading.Thread):
    """One client's whole http-01 issuance; records what the server told it."""

    def __init__(self, i, got, stop, go):
        super().__init__(daemon=True)
        self.i, self.got, self.stop, self.go = i, got, stop, go
        self.early = None

    def run(self):
        self.go.wait()
        try:
            self.flow()
        except Exception as e:  # the server went away under us: expected
            if not self.stop.is_set():
                self.early = repr(e)[:200]

    def poll(self, c, url, want):
        while not self.stop.is_set():
            o = c.post(url, None).json()
            if o.get("status") in want:
                return o
            time.sleep(0.2)
        raise RuntimeError("stopped")

    def flow(self):
        c = Client(DIRURL, ROOT)
        name = "crash%d-%d.example" % (self.i, int(time.time() * 1000) % 1000000)
        assert c.register().status == 201
        r = c.new_order([("dns", name)])
        assert r.status == 201
        order_url, order = r.headers["Location"], r.json()
        authz = c.post(order["authorizations"][0], None).json()
        ch = [x for x in authz["challenges"] if x["type"] == "http-01"][0]
        mgmt("add-http01", {"token": ch["token"], "content": ch["token"] + "." + c.key.thumbprint()})
        assert c.post(ch["url"], {}).status == 200
        if self.poll(c, order_url, ("ready", "invalid"))["status"] != "ready":
            return
        _, csr = make_csr([name])
        f = c.post(order["finalize"], {"csr": b64u(csr)})
        o = f.json()
        if o.get("status") != "valid":
            o = self.poll(c, order_url, ("valid", "invalid"))
        if o.get("certificate"):
            self.got.append((c, order_url, o["certificate"], name))  # told before any download
            r = c.post(o["certificate"], None)
            assert r.status == 200


def round_(n, kill_after):
    p = start("r%d" % n)
    pre = Client(DIRURL, ROOT)
    pre_nonce = pre.new_nonce()
    got, stop = [], threading.Event()
    go = threading.Event()
    threads = [Issuer(i, got, stop, go) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    t0 = time.time()

    def killer():
        while len(got) < kill_after and time.time() - t0 < 120:
            time.sleep(0.002)
        p.send_signal(signal.SIGKILL)
    k = threading.Thread(target=killer, daemon=True)
    k.start()
    go.set()
    k.join()
    p.wait()
    early = [t.early for t in threads if t.early]
    stop.set()
    told = list(got)
    alive = sum(t.is_alive() for t in threads)
    log("round %d: killed after %.1fs with %d certificate(s) handed out, %d client(s) mid-flight"
        % (n, time.time() - t0, len(told), alive))
    for t in threads:
        t.join(timeout=60)
    early = [t.early for t in threads if t.early] if not early else early
    if early:
        log("round %d: %d client(s) failed around the kill, e.g. %s" % (n, len(early), early[0]))

    p = start("r%d-after" % n)
    try:
        # recovery: nothing stays processing (give the start-up sweep a few seconds)
        for _ in range(50):
            stuck = db_query("SELECT count(*) FROM records WHERE kind = 1 AND status = 'processing'")[0][0]
            if stuck == 0:
                break
            time.sleep(0.1)
        assert stuck == 0, "round %d: %d order(s) still processing after restart" % (n, stuck)
        for c, order_url, cert_url, name in told:
            c.nonce = None  # the one we held died with the server
            serial = cert_url.rstrip("/").rsplit("/", 1)[-1]
            r = c.post(cert_url, None)
            assert r.status == 200 and b"BEGIN CERTIFICATE" in r.body, "cert %s: %r" % (cert_url, r)
            o = c.post(order_url, None).json()
            assert o["status"] == "valid" and o["certificate"] == cert_url, o
            rows = db_query("SELECT count(*) FROM records WHERE kind = 3")[0][0]
            assert rows > 0, "no certificate rows"
        r = pre.post(pre.dir["newAccount"], {"termsOfServiceAgreed": True}, use_jwk=True,
                     nonce=pre_nonce)
        assert r.status == 400 and r.problem_type == "badNonce", "pre-kill nonce: %r" % r
        r = pre.register()
        assert r.status == 201, "fresh nonce refused after restart: %r" % r
        log("round %d: %d certificate(s) downloadable after restart, pre-kill nonce refused (badNonce)"
            % (n, len(told)))
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            raise
        assert rc == 0, "attesta exited %d after SIGTERM" % rc
    return len(told)


def main():
    total = 0
    for n, k in enumerate(KILL_AFTER, 1):
        total += round_(n, k)
    orders = db_query("SELECT status, count(*) FROM records WHERE kind = 1 GROUP BY status")
    log("orders by status at the end: %r" % (orders,))
    assert total > 0, "no client got a certificate before any kill"
    print("ok - %d kills, %d certificates handed out before a kill all survived" % (len(KILL_AFTER), total))
    return 0


if __name__ == "__main__":
    sys.exit(main())
