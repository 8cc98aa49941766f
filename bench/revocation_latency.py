"""Revocation on one host to refusal on another: the time from sending POST /v1/revoke to daemon A until
daemon B's POST /v1/verify answers "revoked", over ROUNDS fresh tokens. Prints: rounds median p90 max (ms).

    python3 bench/revocation_latency.py SOCKET_A SOCKET_B [ROUNDS]"""
import http.client
import json
import socket
import statistics
import sys
import time


class Unix(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.path)


def post(conn, path, body):
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    answer = conn.getresponse()
    return answer.status, json.loads(answer.read())


def main():
    a, b = Unix(sys.argv[1]), Unix(sys.argv[2])
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    took = []
    for i in range(rounds):
        status, issued = post(a, "/v1/jwt", {"sub": f"latency-{i}"})
        assert status == 200, issued
        token = issued["jwt"]
        status, verdict = post(b, "/v1/verify", {"jwt": token})
        assert status == 200 and verdict["valid"], verdict
        start = time.monotonic()
        status, revoked = post(a, "/v1/revoke", {"jwt": token})
        assert status == 200 and revoked["revoked"], revoked
        while True:
            status, verdict = post(b, "/v1/verify", {"jwt": token})
            if verdict.get("reason") == "revoked":
                break
            if time.monotonic() - start > 10:
                raise SystemExit(f"daemon B still accepts a token revoked on A 10 s ago: {verdict}")
        took.append((time.monotonic() - start) * 1000)
    took.sort()
    print(rounds, f"{statistics.median(took):.2f}", f"{took[int(0.9 * (len(took) - 1))]:.2f}", f"{took[-1]:.2f}")


main()
