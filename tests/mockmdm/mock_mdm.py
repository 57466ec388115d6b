#!/usr/bin/python3
"""Mock MDM for attesta's signal-source tests (Python 3 standard library only).

Serves one device inventory in the shapes of Kandji, Jamf Pro, Intune (Graph),
JumpCloud and Workspace ONE, with their authentication, plus switchable
failure modes and request counters.

usage: mock_mdm.py PORT DEVICES.json [--cert CERT.pem --key KEY.pem]
  PORT 0 picks an ephemeral port; the bound port is printed on stdout.

DEVICES.json: {"credentials": {...}, "devices": [{"serial", "udid", "managed",
  "removed", "blueprint", "email", "compliance"}, ...]}
Control: POST /_control {"mode": "ok|slow|500|429|malformed|oversized|html|badcreds",
  "delay": s, "retry_after": s, "count": n (requests the mode applies to),
  "token_ttl": s, "revoke_tokens": true}; GET /_stats; POST /_reset.
"""
import json
import secrets
import ssl
import sys
import threading
import time
import urllib.parse
from base64 import b64decode
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {}
DEFAULT_CREDS = {
    "kandji_token": "kandji-test-token-s3cr3t",
    "jamf_client_id": "jamf-client", "jamf_client_secret": "jamf-secret-s3cr3t",
    "intune_client_id": "intune-client", "intune_client_secret": "intune-secret-s3cr3t",
    "jumpcloud_key": "jumpcloud-key-s3cr3t",
    "ws1_tenant_code": "ws1-tenant-s3cr3t", "ws1_user": "ws1api", "ws1_password": "ws1-pass-s3cr3t",
}


def reset():
    STATE.update(requests={}, total=0, mode="ok", delay=0.0, retry_after=None, count=None,
                 tokens={}, token_ttl=3600)


def kandji(d):
    return {"device_id": d["udid"], "serial_number": d["serial"], "mdm_enabled": d["managed"],
            "is_removed": d["removed"], "blueprint_name": d["blueprint"], "platform": "Mac",
            "user": {"email": d["email"]}, "agent_installed": "True"}


def jamf(d):
    return {"id": d["serial"][-4:], "udid": d["udid"],
            "general": {"remoteManagement": {"managed": d["managed"]}, "supervised": True},
            "hardware": {"serialNumber": d["serial"]}, "userAndLocation": {"email": d["email"]}}


def intune(d):
    return {"id": d["udid"], "serialNumber": d["serial"], "udid": d["udid"],
            "complianceState": d["compliance"], "managementAgent": "mdm",
            "userPrincipalName": d["email"]}


def jumpcloud(d):
    return {"id": d["udid"], "serialNumber": d["serial"], "udid": d["udid"],
            "enrolled": d["managed"], "osVersion": "14.4"}


def ws1(d):
    return {"Id": {"Value": 1000}, "SerialNumber": d["serial"], "Udid": d["udid"],
            "EnrollmentStatus": "Enrolled" if d["managed"] else "Unenrolled",
            "ComplianceStatus": "Compliant" if d["compliance"] == "compliant" else "NonCompliant",
            "UserEmailAddress": d["email"]}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body, ctype="application/json", headers=None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def count(self, path):
        with LOCK:
            STATE["requests"][path] = STATE["requests"].get(path, 0) + 1
            STATE["total"] += 1

    def take_mode(self):
        """The failure mode for this request; a counted mode reverts to ok when used up."""
        with LOCK:
            mode = STATE["mode"]
            if STATE["count"] is not None:
                if STATE["count"] <= 0:
                    return "ok", 0, None
                STATE["count"] -= 1
            return mode, STATE["delay"], STATE["retry_after"]

    def control(self, path):
        if path == "/_stats":
            with LOCK:
                return self.reply(200, {"requests": STATE["requests"], "total": STATE["total"]})
        if path == "/_reset":
            with LOCK:
                reset()
            return self.reply(200, {"ok": True})
        req = json.loads(self.body() or b"{}")
        with LOCK:
            for k in ("mode", "delay", "retry_after", "count", "token_ttl"):
                if k in req:
                    STATE[k] = req[k]
            if req.get("revoke_tokens"):
                STATE["tokens"] = {}
        return self.reply(200, {"ok": True})

    def token(self, vendor):
        form = urllib.parse.parse_qs(self.body().decode())
        cid = form.get("client_id", [""])[0]
        sec = form.get("client_secret", [""])[0]
        ok = (form.get("grant_type", [""])[0] == "client_credentials"
              and cid == CREDS[vendor + "_client_id"] and sec == CREDS[vendor + "_client_secret"])
        if STATE["mode"] == "badcreds" or not ok:
            return self.reply(401, {"error": "invalid_client"})
        tok = secrets.token_hex(16)
        with LOCK:
            STATE["tokens"][tok] = vendor
            ttl = STATE["token_ttl"]
        return self.reply(200, {"access_token": tok, "token_type": "Bearer", "expires_in": ttl})

    def authorized(self, vendor):
        auth = self.headers.get("Authorization", "")
        if STATE["mode"] == "badcreds":
            return False
        if vendor == "kandji":
            return auth == "Bearer " + CREDS["kandji_token"]
        if vendor in ("jamf", "intune"):
            with LOCK:
                return auth.startswith("Bearer ") and STATE["tokens"].get(auth[7:]) == vendor
        if vendor == "jumpcloud":
            return self.headers.get("x-api-key") == CREDS["jumpcloud_key"]
        if vendor == "ws1":
            if self.headers.get("aw-tenant-code") != CREDS["ws1_tenant_code"]:
                return False
            want = CREDS["ws1_user"] + ":" + CREDS["ws1_password"]
            return auth.startswith("Basic ") and b64decode(auth[6:]).decode() == want
        return False

    def lookup(self, path, q):
        """(vendor, answer) for an inventory request, or (None, None)."""
        devs = DEVICES
        if path == "/api/v1/devices":
            sn = q.get("serial_number", [""])[0]
            return "kandji", [kandji(d) for d in devs if sn and sn in d["serial"]]
        if path == "/api/v2/computers-inventory":
            f = q.get("filter", [""])[0]
            sn = f[len('hardware.serialNumber=="'):-1] if f.startswith('hardware.serialNumber=="') else None
            res = [jamf(d) for d in devs if d["serial"] == sn]
            return "jamf", {"totalCount": len(res), "results": res}
        if path == "/v1.0/deviceManagement/managedDevices":
            f = q.get("$filter", [""])[0]
            sn = f[len("serialNumber eq '"):-1] if f.startswith("serialNumber eq '") else None
            return "intune", {"value": [intune(d) for d in devs if d["serial"] == sn]}
        if path == "/api/systems":
            f = q.get("filter", [""])[0]
            sn = f[len("serialNumber:$eq:"):] if f.startswith("serialNumber:$eq:") else None
            return "jumpcloud", [jumpcloud(d) for d in devs if d["serial"] == sn]
        if path == "/API/mdm/devices" and q.get("searchby", [""])[0] == "Serialnumber":
            sn = q.get("id", [""])[0]
            res = [ws1(d) for d in devs if d["serial"] == sn]
            return "ws1", (res[0] if res else None)
        return None, None

    def handle_any(self):
        url = urllib.parse.urlsplit(self.path)
        path, q = url.path, urllib.parse.parse_qs(url.query)
        if path.startswith("/_"):
            return self.control(path)
        self.count(path)
        if path == "/api/oauth/token":
            return self.token("jamf")
        if path.endswith("/oauth2/v2.0/token"):
            return self.token("intune")
        mode, delay, retry_after = self.take_mode()
        if mode == "slow":
            time.sleep(delay)
        elif mode == "500":
            return self.reply(500, {"error": "internal"})
        elif mode == "429":
            hdr = {"Retry-After": str(retry_after)} if retry_after is not None else {}
            return self.reply(429, {"error": "rate limited"}, headers=hdr)
        elif mode == "malformed":
            return self.reply(200, b'{"results": [ {"serial_number": "C02', "application/json")
        elif mode == "oversized":
            return self.reply(200, b"[" + b'"xxxxxxxxxxxxxxxx",' * 300000 + b'"x"]')
        elif mode == "html":
            return self.reply(200, b"<html><body>login</body></html>", "text/html")
        vendor, answer = self.lookup(path, q)
        if vendor is None:
            return self.reply(404, {"error": "no such endpoint"})
        if not self.authorized(vendor):
            return self.reply(401, {"error": "unauthorized"})
        if answer is None:
            return self.reply(404, {"errorCode": 404, "message": "Device not found"})
        return self.reply(200, answer)

    do_GET = handle_any
    do_POST = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """Clients that give up (timeouts, aborted oversized answers) are expected."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def main():
    global DEVICES, CREDS
    if len(sys.argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    with open(sys.argv[2]) as f:
        data = json.load(f)
    CREDS = dict(DEFAULT_CREDS, **data.get("credentials", {}))
    DEVICES = [dict({"udid": "", "managed": True, "removed": False, "blueprint": "",
                     "email": "", "compliance": "compliant"}, **d) for d in data["devices"]]
    reset()
    srv = Server(("127.0.0.1", int(sys.argv[1])), Handler)
    args = sys.argv[3:]
    if "--cert" in args:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args[args.index("--cert") + 1], args[args.index("--key") + 1])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
