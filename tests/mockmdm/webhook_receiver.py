#!/usr/bin/env python3
"""Webhook receiver for the integration tests (stdlib only).

Verifies every POSTed JWT (HS256, key from $WEBHOOK_SECRET) independently of
attesta and appends one JSON line per request to --log:
{"path", "status", "verified", "claims"}. Behaviour by path:
  /ok     200
  /flaky  500 for the first two requests of each jti, then 200
  /hang   sleeps 30 s before answering (the sender must time out)
  /slow   sleeps 1.5 s, then 200 (a backlog builds up behind it)
  /reject 400
Prints the port to --port-file once listening.
"""
import argparse, base64, hashlib, hmac, json, os, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = os.environ.get("WEBHOOK_SECRET", "").encode()
LOCK = threading.Lock()
SEEN = {}


def b64u(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def verify(token):
    try:
        h, p, sig = token.split(".")
    except ValueError:
        return False, None
    want = hmac.new(SECRET, f"{h}.{p}".encode(), hashlib.sha256).digest()
    header = json.loads(b64u(h))
    claims = json.loads(b64u(p))
    ok = header.get("alg") == "HS256" and hmac.compare_digest(want, b64u(sig))
    return ok, claims


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        ok, claims = verify(body)
        ctype = self.headers.get("Content-Type", "")
        path = self.path
        jti = (claims or {}).get("jti", "")
        with LOCK:
            SEEN[(path, jti)] = SEEN.get((path, jti), 0) + 1
            n = SEEN[(path, jti)]
        status = 200
        if not ok or ctype != "application/jwt":
            status = 401
        elif path == "/flaky" and n <= 2:
            status = 500
        elif path == "/reject":
            status = 400
        elif path == "/hang":
            time.sleep(30)
        elif path == "/slow":
            time.sleep(1.5)
        with LOCK, open(ARGS.log, "a") as f:
            f.write(json.dumps({"path": path, "status": status, "verified": ok,
                                "n": n, "claims": claims}) + "\n")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--port-file", required=True)
    ARGS = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    with open(ARGS.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(ARGS.port_file + ".tmp", ARGS.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
