#!/usr/bin/env python3
"""Get a JWT from hsmsignd over its Unix socket. Python 3.8 or later, standard library only.

This replaces the usual in-process create_token():

    def create_token(sub):
        return jwt.encode({"sub": sub, "aud": "api-gateway", "exp": time.time() + 300}, SECRET, "HS256")

A service using this file holds no key and no secret: the signing key never leaves the HSM, and the
service only asks. hsmsignd knows who is asking from the kernel (SO_PEERCRED, the uid of this process)
and itself writes iss, aud, iat, nbf, exp and jti, within what its [[client]] table allows.

    from issue_token import issue_token
    answer = issue_token("alice", ttl=300, socket_path="/run/hsmsignd/sign.sock")  # {"jwt", "kid", ...}

    python3 issue_token.py --socket /run/hsmsignd/sign.sock --sub alice [--aud A]... [--ttl N] [--claim k=v]...
"""
import argparse
import email.utils
import errno
import http.client
import json
import os
import random
import socket
import sys
import time

DEFAULT_SOCKET = "/run/hsmsignd/sign.sock"
RETRYABLE_STATUS = {429, 503}  # overloaded; the token or the audit log is failing
LONGEST_WAIT = 10.0  # seconds: a Retry-After longer than this is the caller's decision, not ours


class IssueError(Exception):
    """status: the HTTP status (None when no answer came); code: the daemon's `error` ("bad_request",
    "forbidden", "overloaded", ...) or, for a socket error, its errno name ("ENOENT", "ETIMEDOUT", ...);
    retryable: asking again later may work; retry_after: seconds, when the daemon said so."""

    def __init__(self, message, status=None, code=None, retryable=False, retry_after=None):
        super().__init__(message)
        self.message, self.status, self.code = message, status, code
        self.retryable, self.retry_after = retryable, retry_after


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP/1.1 over a Unix socket. Kept alive between requests: reuse one per thread for many tokens."""

    def __init__(self, path=DEFAULT_SOCKET, timeout=5.0):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        try:
            self.sock.connect(self.socket_path)
        except OSError:
            self.sock.close()
            self.sock = None
            raise


def _retry_after(header):
    if header is None:
        return None
    if header.strip().isdigit():
        return float(header)
    try:  # Retry-After may also be an HTTP date
        return max(0.0, email.utils.parsedate_to_datetime(header).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def request_token(connection, sub, aud=None, ttl=None, claims=None, keyset=None):
    """One POST /v1/jwt on `connection`: the answer {jwt, kid, alg, jti, iat, exp}, or IssueError."""
    request = {"sub": sub, "aud": aud, "ttl": ttl, "keyset": keyset, "claims": claims}
    body = json.dumps({k: v for k, v in request.items() if v is not None}).encode()
    try:
        connection.request("POST", "/v1/jwt", body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        text = response.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as e:
        # The next request on this connection must start on a fresh socket.
        connection.close()
        # Refused, missing or reset sockets are the daemon restarting (or a kept-alive connection it had
        # just closed); a permission error is this process not being in the socket's group, which waiting
        # won't fix.
        code = "ETIMEDOUT" if isinstance(e, socket.timeout) else errno.errorcode.get(getattr(e, "errno", None))
        raise IssueError(f"hsmsignd: {connection.socket_path}: {e or type(e).__name__}", code=code,
                         retryable=not isinstance(e, PermissionError)) from e
    try:
        answer = json.loads(text)
    except ValueError:
        answer = None  # not JSON: something other than hsmsignd answered
    if response.status == 200 and isinstance(answer, dict) and isinstance(answer.get("jwt"), str):
        return answer
    code = answer.get("error") if isinstance(answer, dict) else None
    message = answer.get("message") if isinstance(answer, dict) else None
    raise IssueError(f"hsmsignd: {' '.join(str(x) for x in (response.status, code) if x)}: {message or text[:200]}",
                     status=response.status, code=code, retryable=response.status in RETRYABLE_STATUS,
                     retry_after=_retry_after(response.getheader("Retry-After")))


def issue_token(sub, aud=None, ttl=None, claims=None, keyset=None, socket_path=DEFAULT_SOCKET, timeout=5.0,
                retries=2, connection=None):
    """A token for `sub`, asked again up to `retries` times for a retryable error: after the daemon's
    Retry-After, or an exponential backoff with jitter so that many callers don't come back at once.
    Pass a UnixHTTPConnection to keep it alive across calls; otherwise one is opened and closed here."""
    own = connection is None
    connection = connection or UnixHTTPConnection(socket_path, timeout)
    try:
        for attempt in range(retries + 1):
            try:
                return request_token(connection, sub, aud, ttl, claims, keyset)
            except IssueError as e:
                wait = e.retry_after if e.retry_after is not None else 0.1 * 2 ** attempt * random.uniform(0.5, 1.5)
                if not e.retryable or attempt == retries or wait > LONGEST_WAIT:
                    raise
                time.sleep(wait)
    finally:
        if own:
            connection.close()


def claim(text):
    name, eq, value = text.partition("=")
    if not name or not eq:
        raise argparse.ArgumentTypeError("--claim takes NAME=VALUE")
    try:
        return name, json.loads(value)  # as hsmsignctl does: a JSON value if it is one (5, true, [..]), else a string
    except ValueError:
        return name, value


def main(argv=None):
    parser = argparse.ArgumentParser(description="Get a JWT from hsmsignd and print its answer as JSON.")
    parser.add_argument("--socket", default=os.environ.get("HSMSIGND_SOCKET", DEFAULT_SOCKET))
    parser.add_argument("--sub", required=True)
    parser.add_argument("--aud", action="append", help="repeat for an array")
    parser.add_argument("--ttl", type=int, help="seconds")
    parser.add_argument("--keyset")
    parser.add_argument("--claim", action="append", type=claim, default=[], metavar="NAME=VALUE")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds any one socket operation may take")
    parser.add_argument("--retries", type=int, default=2)
    args = parser.parse_args(argv)
    aud = args.aud[0] if args.aud and len(args.aud) == 1 else args.aud
    try:
        answer = issue_token(args.sub, aud, args.ttl, dict(args.claim) or None, args.keyset, args.socket,
                             args.timeout, args.retries)
    except IssueError as e:
        print(e.message, file=sys.stderr)
        return 75 if e.retryable else 1  # 75: EX_TEMPFAIL, so a calling script may try again later
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
