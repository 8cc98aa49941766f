#!/usr/bin/env python3
"""Finding 003 on the real daemon (tests/e2e harness, build/daemon/hsmsignd, a throw-away SoftHSM token):
one POST with ttl 1e999 and the daemon exits. Run: /usr/bin/python3 tests/fuzz/findings/003-json-number-overflow/confirm_e2e.py"""
import sys, time
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[3] / "e2e"))
from harness import Daemon, UnixHTTPConnection
d = Daemon()
d.start()
try:
    c = UnixHTTPConnection(str(d.socket_path))
    c.request("POST", "/v1/jwt", body=b'{"sub":"alice"}', headers={"Content-Type": "application/json"})
    r = c.getresponse(); print("normal request:", r.status)
    c = UnixHTTPConnection(str(d.socket_path))
    try:
        c.request("POST", "/v1/jwt", body=b'{"sub":"alice","ttl":1e999}', headers={"Content-Type": "application/json"})
        r = c.getresponse(); print("1e999 request:", r.status, r.read())
    except Exception as e:
        print("1e999 request: no answer:", type(e).__name__, e)
    time.sleep(1)
    print("daemon exit status:", d.process.poll())
    print("stderr tail:", open(d.stderr_path).read()[-400:])
finally:
    if d.process is not None and d.process.poll() is None:
        d.stop()
