"""Hostile traffic against one running daemon while a well-behaved issuer keeps asking for JWTs.

Each test starts its own daemon, runs a well-behaved client (its own process, hostile_support.GoodClient)
alone to measure its baseline latency, then runs one attack beside it and checks that:
  - every request of the good client got a 200 with a token that verifies against the JWKS (jwcrypto),
    and its p99 under attack stays under max(10 x its baseline p99, 750 ms): a stalled daemon fails;
  - the daemon did what the attack called for (timeouts, refusals, JSON errors, never a 5xx, never a
    second request smuggled through a connection whose framing was lost);
  - afterwards its descriptors are back to the idle count (+-2) and its RSS within 20 MiB of the warm
    baseline, plus 16 KiB per connection the attack held at once: the allocator keeps (and reuses) the
    ~10 KiB a connection costs, so a flood of N connections leaves RSS higher without leaking. Where
    that matters, the attack runs twice and the second round must not grow RSS.
Cases that test_bad_input.py and test_connections.py already cover (one stalled request, 300 idle
connections, CL+TE, two Content-Lengths, 9 KiB headers) are not repeated here.

Counts and durations come from HOSTILE_* environment variables (defaults keep the module near a minute
on two cores), e.g. HOSTILE_IDLE_CONNECTIONS=10000 HOSTILE_ATTACK_SECONDS=30 for a longer run.
HOSTILE_REPORT=FILE writes the measured numbers as JSON.
"""
import concurrent.futures
import contextlib
import json
import os
import select
import socket
import sys
import time
import unittest

from harness import Daemon, b64url, decode_segment, http_request, verify_jwt
from hostile_support import (GoodClient, PeakSampler, ProcStats, close_all, collect_answers, connect_many, env_float,
                             env_int, fd_targets, parse_answer, raise_descriptor_limit, wait_for)

CONNECTION_CAP = 4096  # daemon/server/limits.h: max_connections
REQUEST_TIMEOUT = 2.0  # [server] request_timeout of every daemon here
MAX_BODY = 262144      # large enough that 100000 nested '[' reach the JSON parser

BASELINE_SECONDS = env_float("HOSTILE_BASELINE_SECONDS", 1.5)
ATTACK_SECONDS = env_float("HOSTILE_ATTACK_SECONDS", 2.5)
GOOD_INTERVAL = env_float("HOSTILE_GOOD_INTERVAL", 0.01)
IDLE_CONNECTIONS = env_int("HOSTILE_IDLE_CONNECTIONS", 3000)
PAST_CAP = env_int("HOSTILE_PAST_CAP", 200)
FLOOD_CONNECTIONS = env_int("HOSTILE_FLOOD_CONNECTIONS", 16)
FLOOD_DEPTH = env_int("HOSTILE_FLOOD_DEPTH", 100)
SLOWLORIS = env_int("HOSTILE_SLOWLORIS", 200)
JWKS_SLOWLORIS = env_int("HOSTILE_JWKS_SLOWLORIS", 100)
SLOW_READERS = env_int("HOSTILE_SLOW_READERS", 40)
SLOW_READER_BYTES = env_int("HOSTILE_SLOW_READER_BYTES", 1 << 20)
HALF_OPEN = env_int("HOSTILE_HALF_OPEN", 50)  # of each of four kinds

# On 2 shared cores a busy neighbour alone can delay one request by a few hundred ms; a stalled daemon
# (a blocked I/O thread, a lock held across a token call) delays every request by seconds.
LATENCY_FLOOR_MS = 750.0
LATENCY_FACTOR = 10.0
RSS_SLACK_KIB = 20 * 1024
RSS_PER_CONNECTION_KIB = 16
RSS_ROUND_GROWTH_KIB = 2 * 1024
FD_SLACK = 2
SETTLE_SECONDS = 5.0

RESULTS = []


def setUpModule():
    # Thousands of sockets here, and the daemon (a child) inherits the limit and raises it to the hard one.
    have = raise_descriptor_limit(20000)
    if have < CONNECTION_CAP + PAST_CAP + 500:
        raise AssertionError(f"RLIMIT_NOFILE {have} is too low for {CONNECTION_CAP + PAST_CAP} connections")


def tearDownModule():
    if not RESULTS:
        return
    lines = ["", "hostile suite: good client latency (ms) and daemon resources",
             f"{'case':32} {'base p50':>8} {'base p99':>8} {'atk p50':>8} {'atk p99':>8} {'atk max':>8} "
             f"{'bound':>6} {'n':>5} {'fds idle/peak/after':>20} {'rss KiB warm/peak/after':>26}"]
    for r in RESULTS:
        lines.append(f"{r['case']:32} {r['base_p50']:8.1f} {r['base_p99']:8.1f} {r['attack_p50']:8.1f} "
                     f"{r['attack_p99']:8.1f} {r['attack_max']:8.1f} {r['bound']:6.0f} {r['attack_n']:5d} "
                     f"{'%d/%d/%d' % (r['fds_idle'], r['fds_peak'], r['fds_after']):>20} "
                     f"{'%d/%d/%d' % (r['rss_warm'], r['rss_peak'], r['rss_after']):>26}"
                     + (f"  {r['notes']}" if r.get("notes") else ""))
    print("\n".join(lines), file=sys.stderr)
    if os.environ.get("HOSTILE_REPORT"):
        with open(os.environ["HOSTILE_REPORT"], "w") as out:
            json.dump(RESULTS, out, indent=1)


# --- requests --------------------------------------------------------------------------------------

def jwt_request(sub):
    return http_request("POST", "/v1/jwt", json.dumps({"sub": sub}).encode(), ["Content-Type: application/json"])


def post(path, body, headers=()):
    """A POST whose Content-Length is right by construction (the framing is not what these cases test)."""
    return http_request("POST", path, body, ["Content-Type: application/json", *headers])


def sub_of(body):
    return decode_segment(json.loads(body)["jwt"].split(".")[1])["sub"]


def is_json_error(answer):
    """The contract's error: JSON {"error": code, "message": text}."""
    status, headers, body = answer
    if "application/json" not in headers.get("content-type", ""):
        return False
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    return isinstance(parsed, dict) and isinstance(parsed.get("error"), str) and \
        isinstance(parsed.get("message"), str) and bool(parsed["message"].strip())


def exchange(sock, data, timeout=5.0):
    """Sends a request on a held connection and reads one answer (None when the daemon closed)."""
    sock.settimeout(timeout)
    sock.sendall(data)
    buffer = b""
    while True:
        parsed = parse_answer(buffer)
        if parsed:
            return parsed[0]
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buffer += chunk


def pump(sockets, outgoing, answers_wanted, within):
    """Writes each socket's bytes (non-blocking, as the daemon takes them) and parses its answers until
    it has `answers_wanted`, the daemon closes it, or time is up. Returns [(answers, closed)] in order."""
    poller = select.poll()
    state = {}
    for s, data in zip(sockets, outgoing):
        s.setblocking(False)
        state[s.fileno()] = {"sock": s, "out": memoryview(data), "in": b"", "answers": [], "closed": False}
        poller.register(s, select.POLLIN | select.POLLOUT)
    deadline = time.monotonic() + within
    pending = len(sockets)
    while pending and time.monotonic() < deadline:
        for fd, events in poller.poll(200):
            st = state[fd]
            s = st["sock"]
            if events & select.POLLOUT and st["out"]:
                try:
                    st["out"] = st["out"][s.send(st["out"]):]
                except BlockingIOError:
                    pass
                except OSError:
                    st["out"] = memoryview(b"")
                if not st["out"]:
                    poller.modify(s, select.POLLIN)
            if events & (select.POLLIN | select.POLLHUP | select.POLLERR):
                try:
                    chunk = s.recv(262144)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    st["closed"] = True
                else:
                    st["in"] += chunk
                    while (parsed := parse_answer(st["in"])) is not None:
                        st["answers"].append(parsed[0])
                        st["in"] = parsed[1]
                if st["closed"] or len(st["answers"]) >= answers_wanted:
                    poller.unregister(s)
                    pending -= 1
    for s in sockets:
        s.setblocking(True)
    return [(state[s.fileno()]["answers"], state[s.fileno()]["closed"]) for s in sockets]


# --- malformed requests ---------------------------------------------------------------------------

STRICT = "4xx"          # must be refused: a 4xx with a JSON error
LENIENT = "200 or 4xx"  # the RFC lets a server accept it (noted per case); a 4xx must still be JSON


class Case:
    """One malformed request. framing_ok: the daemon can tell where the request ends, so it may keep the
    connection and answer the canary request sent after it; otherwise it must close after its answer."""

    def __init__(self, name, data, expect=STRICT, framing_ok=False, may_close=False, where=("unix", "tcp")):
        self.name, self.data, self.expect, self.framing_ok, self.may_close = name, data, expect, framing_ok, may_close
        self.where = where


def malformed_cases(get_path, post_path, listener):
    """The table, for the issuer socket (listener "unix") or the JWKS listener ("tcp")."""
    body = b'{"sub":"user-1"}'
    head = b"POST " + post_path.encode() + b" HTTP/1.1\r\nHost: localhost\r\n"
    get = b"GET " + get_path.encode()
    te = lambda coding: head + b"Transfer-Encoding: " + coding + b"\r\n\r\n"
    chunked = head + b"Transfer-Encoding: chunked\r\n\r\n"
    one_chunk = b"10\r\n" + body + b"\r\n"
    json_body = lambda raw: post("/v1/jwt", raw)
    cases = [
        # request line
        Case("extra token in the request line", get + b" HTTP/1.1 extra\r\nHost: x\r\n\r\n"),
        Case("two spaces in the request line", b"GET  " + get_path.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
        Case("HTTP/0.9 simple request", get + b"\r\n\r\n"),
        Case("HTTP/2.0 in an HTTP/1 request line", get + b" HTTP/2.0\r\nHost: x\r\n\r\n"),
        Case("version HTTP/1.10", get + b" HTTP/1.10\r\nHost: x\r\n\r\n"),
        Case("lower-case version http/1.1", get + b" http/1.1\r\nHost: x\r\n\r\n"),
        Case("HTTP/2 connection preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        Case("NUL in the method", b"G\x00T " + get_path.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
        Case("NUL in the target", b"GET /heal\x00thz HTTP/1.1\r\nHost: x\r\n\r\n"),
        Case("a 10 KB method", b"A" * 10000 + b" / HTTP/1.1\r\nHost: x\r\n\r\n"),
        Case("binary garbage", bytes(range(256)) * 16),
        Case("lower-case method", b"get " + get_path.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n", framing_ok=True),
        Case("unknown method BREW", b"BREW " + post_path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
             b"Content-Length: 0\r\n\r\n", framing_ok=True),
        Case("absolute-URI target", b"GET http://localhost" + get_path.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n",
             framing_ok=True),
        Case("asterisk-form target", b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", framing_ok=True),
        Case("authority-form CONNECT", b"CONNECT localhost:80 HTTP/1.1\r\nHost: x\r\n\r\n", framing_ok=True),
        Case("dot-dot above the root", b"GET /../../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", framing_ok=True),
        Case("dot-dot onto another route", b"GET /.well-known/../healthz HTTP/1.1\r\nHost: x\r\n\r\n", framing_ok=True),
        Case("percent-encoded route name", b"GET /.well-known/jwks%2ejson HTTP/1.1\r\nHost: x\r\n\r\n"
             if listener == "tcp" else post("/v1/%6Awt", body), framing_ok=True),
        Case("percent-encoded dot-dot", b"GET /%2e%2e/healthz HTTP/1.1\r\nHost: x\r\n\r\n", framing_ok=True),
        Case("percent-encoded NUL", b"GET /healthz%00 HTTP/1.1\r\nHost: x\r\n\r\n", framing_ok=True),
        Case("truncated percent escape", b"GET /healthz% HTTP/1.1\r\nHost: x\r\n\r\n", framing_ok=True),
        Case("7 KB URI (under the header limit)", b"GET /" + b"a" * 7000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
             framing_ok=True),
        Case("20 KB URI", b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
        # header section
        Case("bare LF line endings (RFC 9112 lets a server accept them)", get + b" HTTP/1.1\nHost: x\n\n",
             expect=LENIENT, framing_ok=True),
        Case("bare CR line endings", get + b" HTTP/1.1\rHost: x\r\r\n\r\n"),
        Case("space before a header colon", get + b" HTTP/1.1\r\nHost : x\r\n\r\n"),
        Case("obs-fold continuation (RFC 9112 5.2: reject or unfold)",
             get + b" HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", expect=LENIENT, framing_ok=True),
        Case("obs-fold as the first header line", get + b" HTTP/1.1\r\n Host: x\r\n\r\n"),
        Case("NUL in a header value", get + b" HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n"),
        Case("invalid character in a header name", get + b" HTTP/1.1\r\nHost: x\r\nX(A): b\r\n\r\n"),
        Case("empty header name", get + b" HTTP/1.1\r\nHost: x\r\n: b\r\n\r\n"),
        Case("5000 header lines", get + b" HTTP/1.1\r\n" + b"a:b\r\n" * 5000 + b"\r\n"),
        Case("a 1 MiB header line", get + b" HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * (1 << 20) + b"\r\n\r\n"),
        Case("empty lines before the request line (RFC 9112 2.2: may be ignored)", b"\r\n\r\n" + get +
             b" HTTP/1.1\r\nHost: x\r\n\r\n", expect=LENIENT, framing_ok=True),
        # Content-Length
        Case("identical duplicate Content-Length (RFC 9110 8.6 allows)",
             head + b"Content-Length: 16\r\nContent-Length: 16\r\n\r\n" + body, expect=LENIENT, framing_ok=True),
        Case("Content-Length list 16, 16 (RFC 9110 8.6 allows)", head + b"Content-Length: 16, 16\r\n\r\n" + body,
             expect=LENIENT, framing_ok=True),
        Case("obs-fold inside Content-Length (unfolded: 16)", head + b"Content-Length:\r\n 16\r\n\r\n" + body,
             expect=LENIENT, framing_ok=True),
        Case("conflicting Content-Length list 16, 17", head + b"Content-Length: 16, 17\r\n\r\n" + body + b" "),
        Case("negative Content-Length", head + b"Content-Length: -1\r\n\r\n" + body),
        Case("Content-Length overflowing 64 bits", head + b"Content-Length: 184467440737095516160\r\n\r\n" + body),
        Case("Content-Length 2^64 (wraps to 0)", head + b"Content-Length: 18446744073709551616\r\n\r\n" + body),
        Case("hexadecimal Content-Length", head + b"Content-Length: 0x10\r\n\r\n" + body),
        Case("Content-Length with a plus sign", head + b"Content-Length: +16\r\n\r\n" + body),
        Case("empty Content-Length", head + b"Content-Length: \r\n\r\n" + body),
        # chunked
        Case("non-hex chunk size", chunked + b"zz\r\n" + body + b"\r\n0\r\n\r\n"),
        Case("chunk size overflowing 64 bits", chunked + b"fffffffffffffffff\r\n" + body + b"\r\n0\r\n\r\n"),
        Case("negative chunk size", chunked + b"-10\r\n" + body + b"\r\n0\r\n\r\n"),
        Case("chunk size with a 0x prefix", chunked + b"0x10\r\n" + body + b"\r\n0\r\n\r\n"),
        Case("chunk larger than max_body", chunked + b"10000000\r\n" + body + b"\r\n0\r\n\r\n"),
        Case("chunk data without its CRLF", chunked + b"10\r\n" + body + b"XX0\r\n\r\n"),
        Case("a 1 MiB chunk extension", chunked + b"10;" + b"a" * (1 << 20) + b"\r\n" + body + b"\r\n0\r\n\r\n"),
        Case("a 20 KB trailer field", chunked + one_chunk + b"0\r\nX-T: " + b"a" * 20000 + b"\r\n\r\n"),
        Case("5000 trailer fields", chunked + one_chunk + b"0\r\n" + b"t:v\r\n" * 5000 + b"\r\n"),
        Case("Content-Length in the trailer", chunked + one_chunk + b"0\r\nContent-Length: 50\r\n\r\n"),
        # Transfer-Encoding: RFC 9112 6.3 - a request whose final coding is not chunked has no reliable
        # length: 400 and close. The canary sent as its "body" must never be answered.
        Case("Transfer-Encoding: xchunked", te(b"xchunked")),
        Case("Transfer-Encoding: chunked, identity", te(b"chunked, identity") + one_chunk + b"0\r\n\r\n"),
        Case("Transfer-Encoding: identity", te(b"identity")),
        Case("Transfer-Encoding: gzip (no chunked)", te(b"gzip")),
        Case("two Transfer-Encoding fields", head + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n"
             + one_chunk + b"0\r\n\r\n"),
        Case("space before the Transfer-Encoding colon", head + b"Transfer-Encoding : chunked\r\n\r\n" + one_chunk +
             b"0\r\n\r\n"),
        Case("unknown coding before chunked (gzip, chunked; RFC says 501 or decode)",
             te(b"gzip, chunked") + one_chunk + b"0\r\n\r\n", expect=LENIENT, framing_ok=True),
        Case("HTTP/1.0 request with Transfer-Encoding (RFC 9112 6.1: process, then close)",
             head.replace(b"HTTP/1.1", b"HTTP/1.0") + b"Transfer-Encoding: chunked\r\n\r\n" + one_chunk + b"0\r\n\r\n",
             expect=LENIENT),
    ]
    if listener == "unix":
        cases += [
            # JSON bodies: the framing is intact, so the canary after them may be answered
            Case("UTF-16 JSON", json_body('{"sub":"user-1"}'.encode("utf-16")), framing_ok=True),
            Case("UTF-8 BOM before the JSON (lenient parsers skip it)", json_body(b"\xef\xbb\xbf" + body),
                 expect=LENIENT, framing_ok=True),
            Case("overlong UTF-8 encoding of '/'", json_body(b'{"sub":"user\xc0\xaf1"}'), framing_ok=True),
            Case("lone UTF-16 surrogate escape", json_body(b'{"sub":"\\ud800x"}'), framing_ok=True),
            Case("100000 nested arrays", json_body(b"[" * 100000), framing_ok=True),
            Case("30000 nested objects", json_body(b'{"a":' * 30000), framing_ok=True),
            Case("100000 nested arrays in claims", json_body(b'{"sub":"u","claims":{"a":' + b"[" * 100000 +
                                                             b"]" * 100000 + b"}}"), framing_ok=True),
            Case("duplicate member spelled with an escape", json_body(b'{"sub":"a","s\\u0075b":"b"}'), framing_ok=True),
            Case("a 1 MB body past max_body", json_body(b'{"sub":"' + b"a" * 1000000 + b'"}')),
        ]
    return [c for c in cases if listener in c.where]


def run_case(address, case, canary, timeout):
    """Sends the case's bytes and a canary request on one connection; reads up to two answers, and whether
    (and how fast) the daemon closed the connection."""
    family = socket.AF_INET if isinstance(address, tuple) else socket.AF_UNIX
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    out = {"answers": [], "closed": False, "reset": False, "send_error": None}
    started = time.monotonic()
    try:
        sock.connect(address if family == socket.AF_INET else str(address))
        try:
            sock.sendall(case.data + canary)
        except OSError as e:  # the daemon may stop reading a 1 MiB line at the limit: fine, read its answer
            out["send_error"] = f"{type(e).__name__}: {e}"
        buffer = b""
        deadline = started + timeout
        while len(out["answers"]) < 2 and time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                out["closed"] = out["reset"] = True
                break
            except (socket.timeout, TimeoutError):
                break
            if not chunk:
                out["closed"] = True
                break
            buffer += chunk
            while (parsed := parse_answer(buffer)) is not None:
                out["answers"].append(parsed[0])
                buffer = parsed[1]
        out["leftover"] = buffer
    finally:
        sock.close()
    out["elapsed"] = time.monotonic() - started
    return out


def judge_case(case, out, canary_ok, timeout):
    """The problems with one case's outcome (an empty list when it was handled well)."""
    problems = []
    answers = out["answers"]
    if not answers:
        if out["closed"] and case.may_close:
            return problems
        return [f"no answer within {out['elapsed']:.1f}s (closed: {out['closed']}, reset: {out['reset']}, "
                f"sent: {out['send_error'] or 'all'}, partial: {out.get('leftover', b'')[:80]!r})"]
    status, headers, body = answers[0]
    ok = range(400, 500) if case.expect == STRICT else [200, *range(400, 500)]
    if status not in ok:
        problems.append(f"answered {status} (expected {case.expect}): {body[:160]!r}")
    if 400 <= status and not is_json_error(answers[0]):
        problems.append(f"{status} without a JSON error body: {headers.get('content-type')} {body[:160]!r}")
    if len(answers) > 1:
        if not case.framing_ok:
            problems.append(f"smuggled: after {status}, the next request on the connection was answered too: "
                            f"{answers[1][0]} {answers[1][2][:80]!r}")
        elif not canary_ok(answers[1]):
            problems.append(f"the request after it was answered wrongly: {answers[1][0]} {answers[1][2][:120]!r}")
    elif not case.framing_ok and not out["closed"]:
        problems.append(f"the connection was left open after {status} (no answer to the next request either)")
    if out["elapsed"] >= timeout:
        problems.append(f"took {out['elapsed']:.1f}s")
    return problems


# --- the fixture --------------------------------------------------------------------------------------

class Attack:
    """What one attack did, for the report and the resource checks."""

    def __init__(self, name):
        self.name = name
        self.connections_held = 0   # at most at once: the RSS allowance
        self.notes = []

    def held(self, count):
        self.connections_held = max(self.connections_held, count)


class HostileTestCase(unittest.TestCase):
    SERVER = {"request_timeout": f"{REQUEST_TIMEOUT:g}s", "idle_timeout": "30s", "max_body": MAX_BODY}

    def setUp(self):
        self.daemon = Daemon(server=dict(self.SERVER))
        self.addCleanup(self.daemon.cleanup)
        self.addCleanup(self.daemon.stop)
        self.daemon.start()
        self.pid = self.daemon.process.pid
        self.jwks = self.daemon.jwks_json()
        for i in range(5):  # the first signatures' allocations belong to the baseline
            self.daemon.jwt(sub=f"warm-{i}")

    def assertAlive(self):
        if self.daemon.process.poll() is not None:
            self.fail(f"the daemon exited with {self.daemon.process.returncode}:\n{self.daemon.stderr[-3000:]}")

    def daemon_fds(self):
        return ProcStats(self.pid).fds

    @contextlib.contextmanager
    def attack(self, name, mode="fresh"):
        """Runs the good client alone (baseline), then the body (the attack) beside it; then checks the
        good client's answers and latency, and the daemon's descriptors and memory after a settle."""
        idle = ProcStats(self.pid)
        good = GoodClient(self.daemon.socket_path, mode=mode, interval=GOOD_INTERVAL).start()
        self.addCleanup(good.stop)
        time.sleep(0.3)  # the client process's start-up is not the daemon's latency
        baseline_start = time.monotonic()
        time.sleep(BASELINE_SECONDS)
        warm = ProcStats(self.pid)
        run = Attack(name)
        run.idle, run.warm = idle, warm
        sampler = run.sampler = PeakSampler(self.pid).start()
        run.start = time.monotonic()
        try:
            yield run
        finally:
            run.end = time.monotonic()
            time.sleep(0.2)  # requests started just before the end finish
            good.stop()
            sampler.stop()
        self.judge(run, good, baseline_start, sampler)

    def judge(self, run, good, baseline_start, sampler):
        base = good.window(baseline_start, run.start)
        under = good.window(run.start, run.end)
        bound = max(LATENCY_FACTOR * base.p(99), LATENCY_FLOOR_MS)
        alive = self.daemon.process.poll() is None
        after = None
        rss_allowed = run.warm.rss_kib + RSS_SLACK_KIB + RSS_PER_CONNECTION_KIB * run.connections_held
        if alive:
            # Descriptors back to the idle count once the attack's connections are gone, RSS near the warm one
            wait_for(lambda: abs(self.daemon_fds() - run.idle.fds) <= FD_SLACK, SETTLE_SECONDS)
            wait_for(lambda: ProcStats(self.pid).rss_kib <= rss_allowed, 1.0)
            after = ProcStats(self.pid)
        RESULTS.append({
            "case": run.name, "base_n": base.count, "base_p50": base.p(50), "base_p99": base.p(99),
            "attack_n": under.count, "attack_p50": under.p(50), "attack_p99": under.p(99),
            "attack_max": max(under.latencies, default=float("inf")), "bound": bound,
            "good_failures": len(base.failures) + len(under.failures),
            "fds_idle": run.idle.fds, "fds_peak": sampler.peak_fds, "fds_after": after.fds if after else -1,
            "rss_warm": run.warm.rss_kib, "rss_peak": sampler.peak_rss_kib, "rss_after": after.rss_kib if after else -1,
            "connections_held": run.connections_held, "notes": "; ".join(run.notes)})
        self.assertTrue(alive, f"the daemon died during {run.name!r} (exit {self.daemon.process.returncode}):\n"
                               f"{self.daemon.stderr[-3000:]}")
        self.assertGreaterEqual(base.count, 10, f"the good client barely ran alone: {base.summary()}")
        if base.failures:
            self.fail(f"the good client failed before any attack: {base.failure_summary()}")
        if under.failures:
            self.fail(f"{run.name}: the good client failed {len(under.failures)} of {under.count} requests under "
                      f"attack: {under.failure_summary()}")
        self.assertGreaterEqual(under.count, 5, f"{run.name}: the good client stalled: {under.summary()}")
        self.assertLessEqual(under.p(99), bound, f"{run.name}: good client p99 {under.p(99):.1f} ms under attack, "
                                                 f"baseline {base.summary()}; attack {under.summary()}")
        tokens = good.tokens()
        self.assertTrue(tokens, "no sampled token to verify")
        for token in tokens:
            header, claims = verify_jwt(token, self.jwks, "ES256")
            self.assertTrue(claims["sub"].startswith("good-"), claims)
        self.assertLessEqual(abs(after.fds - run.idle.fds), FD_SLACK,
                             f"{run.name}: {after.fds} descriptors after the attack, {run.idle.fds} before "
                             f"(peak {sampler.peak_fds}); open now: {fd_targets(self.pid)}")
        self.assertLessEqual(after.rss_kib, rss_allowed,
                             f"{run.name}: RSS {after.rss_kib} KiB after the attack, {run.warm.rss_kib} KiB before "
                             f"(peak {sampler.peak_rss_kib} KiB, {run.connections_held} connections held at once)")

    def assertRefusedOrClosed(self, collected, run):
        """Connections the daemon did not keep: each one closed, with a 429 JSON error or nothing at all."""
        refused = silent = 0
        for data, closed in collected.values():
            if not data:
                silent += closed
                continue
            parsed = parse_answer(data)
            self.assertIsNotNone(parsed, f"a partial answer: {data[:200]!r}")
            answer, rest = parsed
            self.assertEqual(answer[0], 429, f"past the cap: {answer[0]} {answer[2][:200]!r}")
            self.assertTrue(is_json_error(answer), answer)
            self.assertEqual(json.loads(answer[2])["error"], "overloaded")
            self.assertEqual(rest, b"")
            refused += 1
        run.notes.append(f"{refused} refused with 429, {silent} closed silently")
        return refused + silent

    def slowloris(self, address, count, run):
        """`count` clients sending one byte a second: half still in the header, half in the body (header
        complete). Each must get a 408 JSON error (or a close) about request_timeout after its first byte."""
        conns = connect_many(address, count)
        run.held(count)
        request = jwt_request("slowloris") if not isinstance(address, tuple) else \
            post("/.well-known/jwks.json", b'{"sub":"slowloris"}')
        split = request.index(b"\r\n\r\n") + 4
        state = []
        try:
            for i, conn in enumerate(conns):
                conn.setblocking(False)
                sent = 1 if i % 2 == 0 else split + 1  # header trickle / body trickle
                conn.send(request[:sent])
                state.append({"sent": sent, "first": time.monotonic(), "end": None, "data": b""})
            deadline = time.monotonic() + REQUEST_TIMEOUT + 8
            poller = select.poll()
            for conn in conns:
                poller.register(conn, select.POLLIN)
            by_fd = {conn.fileno(): i for i, conn in enumerate(conns)}
            next_tick = time.monotonic() + 1.0
            while any(s["end"] is None for s in state) and time.monotonic() < deadline:
                for fd, _ in poller.poll(100):
                    i = by_fd[fd]
                    try:
                        chunk = conns[i].recv(65536)
                    except BlockingIOError:
                        continue
                    except ConnectionResetError:
                        chunk = b""
                    state[i]["data"] += chunk
                    if not chunk or parse_answer(state[i]["data"]):
                        state[i]["end"] = time.monotonic()
                        poller.unregister(conns[i])
                if time.monotonic() >= next_tick:
                    next_tick += 1.0
                    for conn, s in zip(conns, state):
                        if s["end"] is None and s["sent"] < len(request) - 1:
                            try:
                                conn.send(request[s["sent"]:s["sent"] + 1])
                                s["sent"] += 1
                            except OSError:
                                pass  # closed by the daemon: the read side tells
        finally:
            close_all(conns)
        hung = [i for i, s in enumerate(state) if s["end"] is None]
        self.assertEqual(len(hung), 0, f"{len(hung)} of {count} slowloris clients still open "
                               f"{REQUEST_TIMEOUT + 8:.0f}s after request_timeout {REQUEST_TIMEOUT:g}s")
        waited = sorted(s["end"] - s["first"] for s in state)
        statuses = {}
        for s in state:
            parsed = parse_answer(s["data"])
            if s["data"]:
                self.assertIsNotNone(parsed, f"partial answer {s['data'][:200]!r}")
                self.assertEqual(parsed[0][0], 408, parsed[0])
                self.assertTrue(is_json_error(parsed[0]), parsed[0])
                self.assertEqual(json.loads(parsed[0][2])["error"], "timeout")
            statuses[parsed[0][0] if parsed else "closed"] = statuses.get(parsed[0][0] if parsed else "closed", 0) + 1
        run.notes.append(f"{statuses}, timed out after {waited[0]:.2f}/{waited[len(waited) // 2]:.2f}/"
                         f"{waited[-1]:.2f}s (min/median/max)")
        self.assertGreaterEqual(waited[0], 0.75 * REQUEST_TIMEOUT, "timed out before request_timeout")
        self.assertLessEqual(waited[-1], REQUEST_TIMEOUT + 3.0, "held well past request_timeout")

    def rounds(self, run):
        """Round numbers until the attack has lasted ATTACK_SECONDS (at least one): short attacks repeat, so
        that the good client's latency under attack rests on enough requests."""
        n = 0
        while n == 0 or time.monotonic() < run.start + ATTACK_SECONDS:
            yield n
            n += 1

    def run_table(self, address, cases, canary, canary_ok, run):
        """Every case on its own connection, eight at a time, round after round; then one verdict a case."""
        timeout = REQUEST_TIMEOUT + 2.5
        problems = {case.name: [] for case in cases}
        accepted = set()
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            for n in self.rounds(run):
                outcomes = list(pool.map(lambda case: run_case(address, case, canary, timeout), cases))
                self.assertAlive()
                for case, out in zip(cases, outcomes):
                    for problem in judge_case(case, out, canary_ok, timeout):
                        if problem not in problems[case.name]:
                            problems[case.name].append(problem)
                    if out["answers"] and out["answers"][0][0] < 400:
                        accepted.add(case.name)
        run.notes.append(f"{len(cases)} cases x {n + 1} rounds; accepted (lenient): {sorted(accepted)}")
        for case in cases:
            with self.subTest(case=case.name):
                if problems[case.name]:
                    self.fail("; ".join(problems[case.name]))


# --- the attacks ----------------------------------------------------------------------------------------

class ConnectionFloodTest(HostileTestCase):
    def test_thousands_of_idle_connections(self):
        rss_after_round = []
        with self.attack(f"{IDLE_CONNECTIONS} idle connections x2") as run:
            for round_ in (1, 2):
                conns = connect_many(self.daemon.socket_path, IDLE_CONNECTIONS)
                try:
                    run.held(len(conns))
                    # Accepted and held by the daemon, not just queued in the backlog
                    held = wait_for(lambda: self.daemon_fds() >= run.idle.fds + IDLE_CONNECTIONS, 5.0)
                    self.assertTrue(held, f"the daemon holds {self.daemon_fds()} descriptors with "
                                          f"{IDLE_CONNECTIONS} connections open")
                    time.sleep(ATTACK_SECONDS / 2)
                    for conn in (conns[0], conns[len(conns) // 2], conns[-1]):
                        answer = exchange(conn, http_request("GET", "/healthz"))
                        self.assertIsNotNone(answer, "an idle connection was closed")
                        self.assertEqual(answer[0], 200, answer)
                finally:
                    close_all(conns)
                wait_for(lambda: self.daemon_fds() <= run.idle.fds + 1 + FD_SLACK, SETTLE_SECONDS)
                rss_after_round.append(ProcStats(self.pid).rss_kib)
            run.notes.append(f"rss after round 1 {rss_after_round[0]} KiB, round 2 {rss_after_round[1]} KiB")
        # Memory a connection used is reused for the next one: a second round must not grow RSS
        self.assertLessEqual(rss_after_round[1], rss_after_round[0] + RSS_ROUND_GROWTH_KIB,
                             f"RSS grew by {rss_after_round[1] - rss_after_round[0]} KiB over a second round of "
                             f"{IDLE_CONNECTIONS} connections: a per-connection leak")

    def test_connections_past_the_cap_are_refused_and_a_kept_alive_client_is_served(self):
        """Past max_connections, more connections are refused (429) or closed, the daemon lives, and the good
        client, whose connection was open before the flood, is served."""
        with self.attack(f"cap {CONNECTION_CAP} + {PAST_CAP} (keep-alive good client)", mode="keepalive") as run:
            conns = connect_many(self.daemon.socket_path, CONNECTION_CAP + PAST_CAP)
            try:
                run.held(len(conns))
                collected = collect_answers(conns, within=2.0)
                dropped = self.assertRefusedOrClosed(collected, run)
                self.assertGreaterEqual(dropped, PAST_CAP - FD_SLACK, "connections past the cap were kept")
                # Never more connections than the cap (and its listeners, token, log) in descriptors
                self.assertLessEqual(self.daemon_fds(), run.idle.fds + CONNECTION_CAP + FD_SLACK)
                kept = [c for c in conns if not collected[c][1]]
                for conn in (kept[:1] + kept[len(kept) // 2:][:1]):  # those kept are served
                    answer = exchange(conn, http_request("GET", "/healthz"))
                    self.assertEqual(answer and answer[0], 200, answer)
                time.sleep(max(0.0, run.start + ATTACK_SECONDS - time.monotonic()))
                self.assertAlive()
            finally:
                close_all(conns)

    def test_a_new_client_is_served_while_idle_connections_fill_the_cap(self):
        """An issuer that connects while thousands of idle (or hostile) connections fill the cap still gets
        its token: idle connections are what must give way, not the client asking for work."""
        with self.attack(f"cap {CONNECTION_CAP} + {PAST_CAP} (new-connection good client)") as run:
            conns = connect_many(self.daemon.socket_path, CONNECTION_CAP + PAST_CAP)
            try:
                run.held(len(conns))
                time.sleep(ATTACK_SECONDS)
                self.assertAlive()
            finally:
                close_all(conns)

    def test_a_flood_on_the_jwks_listener_does_not_lock_issuers_out(self):
        """The JWKS listener is open to every local process, without credentials: connections to it must
        not use up what the issuer socket (and the admin socket) need."""
        with self.attack(f"JWKS listener: {CONNECTION_CAP + PAST_CAP} TCP connections") as run:
            conns = connect_many(("127.0.0.1", self.daemon.port), CONNECTION_CAP + PAST_CAP)
            try:
                run.held(len(conns))
                collected = collect_answers(conns, within=2.0)
                self.assertRefusedOrClosed(collected, run)
                time.sleep(max(0.0, run.start + ATTACK_SECONDS - time.monotonic()))
                self.assertAlive()
            finally:
                close_all(conns)


class RequestFloodTest(HostileTestCase):
    def test_pipelined_request_flood_gets_every_request_answered(self):
        answered = {200: 0}
        with self.attack(f"flood {FLOOD_CONNECTIONS} conns x {FLOOD_DEPTH} pipelined") as run:
            for rounds in self.rounds(run):
                conns = connect_many(self.daemon.socket_path, FLOOD_CONNECTIONS)
                try:
                    run.held(len(conns))
                    payloads = [b"".join(jwt_request(f"flood-{rounds}-{c}-{k}") for k in range(FLOOD_DEPTH))
                                for c in range(FLOOD_CONNECTIONS)]
                    results = pump(conns, payloads, FLOOD_DEPTH, within=30.0)
                finally:
                    close_all(conns)
                for c, (answers, closed) in enumerate(results):
                    self.assertEqual(len(answers), FLOOD_DEPTH,
                                     f"round {rounds}, connection {c}: {len(answers)} answers to {FLOOD_DEPTH} "
                                     f"requests (closed: {closed}); a request was dropped silently")
                    for k, (status, headers, body) in enumerate(answers):
                        answered[status] = answered.get(status, 0) + 1
                        if status == 200:
                            self.assertEqual(sub_of(body), f"flood-{rounds}-{c}-{k}", "answers out of order")
                        else:
                            self.assertIn(status, (429, 503), body)
                            self.assertTrue(is_json_error((status, headers, body)), body)
                    if answers and answers[-1][0] == 200:
                        verify_jwt(json.loads(answers[-1][2])["jwt"], self.jwks, "ES256")
            rounds += 1
            elapsed = time.monotonic() - run.start
            run.notes.append(f"{rounds} rounds, answers {answered}, {sum(answered.values()) / elapsed:.0f}/s")


class SlowClientTest(HostileTestCase):
    def test_slowloris_clients_are_timed_out(self):
        with self.attack(f"slowloris x{SLOWLORIS}") as run:
            self.slowloris(self.daemon.socket_path, SLOWLORIS, run)

    def test_slow_readers_are_not_buffered_without_bound(self):
        """Clients that pipeline requests with large answers (and JWTs) and never read: the daemon stops
        reading them, its writes stall, and request_timeout closes them; memory stays bounded meanwhile."""
        one = http_request("GET", "/metrics") * 3 + jwt_request("slow-reader") + http_request("GET", "/v1/keys")
        payload = one * (SLOW_READER_BYTES // len(one) + 1)
        with self.attack(f"slow readers x{SLOW_READERS}") as run:
            conns = connect_many(self.daemon.socket_path, SLOW_READERS)
            try:
                run.held(len(conns))
                sent = []
                for conn in conns:
                    conn.setblocking(False)
                    total = 0
                    try:
                        while total < len(payload):
                            total += conn.send(payload[total:total + 65536])
                    except BlockingIOError:
                        pass
                    sent.append(total)
                # Never read. The daemon must give up on each (its write stalls) within request_timeout
                poller = select.poll()
                for conn in conns:
                    poller.register(conn, select.POLLRDHUP | select.POLLHUP)
                started = time.monotonic()
                hung_up = set()
                while len(hung_up) < len(conns) and time.monotonic() < started + REQUEST_TIMEOUT + 8:
                    for fd, events in poller.poll(100):
                        hung_up.add(fd)
                        poller.unregister(fd)
                waited = time.monotonic() - started
                run.notes.append(f"sent {sum(sent) // 1024} KiB unread-answer requests; closed by the daemon "
                                 f"after {waited:.1f}s")
                self.assertEqual(len(hung_up), len(conns), f"{len(conns) - len(hung_up)} slow readers still held "
                                                           f"{waited:.1f}s later")
                self.assertLessEqual(self.daemon_fds(), run.idle.fds + 1 + FD_SLACK, "the daemon holds slow readers")
                time.sleep(max(0.0, run.start + ATTACK_SECONDS - time.monotonic()))
            finally:
                close_all(conns)
        peak = run.sampler.peak_rss_kib
        self.assertLessEqual(peak, run.warm.rss_kib + 32 * 1024, f"RSS peaked at {peak} KiB with "
                             f"{SLOW_READERS} slow readers ({run.warm.rss_kib} KiB before)")

    def test_half_open_clients(self):
        """shutdown(SHUT_WR) after nothing, part of a header, part of a body, or a whole request: the daemon
        answers what it can (a whole request: 200; a cut one: a 4xx or nothing) and closes; nothing leaks."""
        request = jwt_request("half-open")
        split = request.index(b"\r\n\r\n") + 4
        kinds = {"nothing": b"", "part of the header": request[:20], "part of the body": request[:split + 3],
                 "a whole request": request}
        seen = {}
        with self.attack(f"half-open x{HALF_OPEN * len(kinds)}") as run:
            for _ in self.rounds(run):
                conns = connect_many(self.daemon.socket_path, HALF_OPEN * len(kinds))
                run.held(len(conns))
                try:
                    plan = [list(kinds)[i % len(kinds)] for i in range(len(conns))]
                    for conn, kind in zip(conns, plan):
                        if kinds[kind]:
                            conn.sendall(kinds[kind])
                        conn.shutdown(socket.SHUT_WR)
                    collected = collect_answers(conns, within=REQUEST_TIMEOUT + 3)
                finally:
                    close_all(conns)
                for conn, kind in zip(conns, plan):
                    data, closed = collected[conn]
                    self.assertTrue(closed, f"{kind} then SHUT_WR: the daemon kept the connection")
                    parsed = parse_answer(data)
                    outcome = parsed[0][0] if parsed else ("partial" if data else "closed")
                    seen.setdefault(kind, {}).setdefault(outcome, 0)
                    seen[kind][outcome] += 1
                    if kind == "a whole request":
                        self.assertEqual(outcome, 200, data[:200])
                        verify_jwt(json.loads(parsed[0][2])["jwt"], self.jwks, "ES256")
                    elif kind == "nothing":
                        self.assertEqual(outcome, "closed", data[:200])
                    else:
                        self.assertIn(outcome, ("closed", *range(400, 500)), data[:200])
                        if parsed:
                            self.assertTrue(is_json_error(parsed[0]), parsed[0])
            run.notes.append(json.dumps(seen))


class MalformedRequestTest(HostileTestCase):

    def test_malformed_requests_on_the_issuer_socket(self):
        cases = malformed_cases("/healthz", "/v1/jwt", "unix")
        self.assertGreaterEqual(len(cases), 30)
        canary_ok = lambda a: a[0] == 200 and "keys" in json.loads(a[2])
        with self.attack(f"malformed HTTP x{len(cases)} (issuer)") as run:
            self.run_table(self.daemon.socket_path, cases, http_request("GET", "/v1/keys"), canary_ok, run)

    def test_json_numbers_beyond_double_range_are_refused(self):
        """A number a double cannot hold, anywhere in a body: 400, never the daemon's end."""
        bodies = [("/v1/jwt", b'{"sub":"user-1","ttl":1e400}'), ("/v1/jwt", b'{"sub":"user-1","ttl":-1e400}'),
                  ("/v1/jwt", b'{"sub":"user-1","ttl":1E+99999999}'),
                  ("/v1/jwt", b'{"sub":"user-1","claims":{"n":1e400}}'),
                  ("/v1/jws", b'{"payload":"' + b64url(b"x").encode() + b'","n":1e400}'),
                  ("/v1/sign", b'{"digest":"' + b64url(b"\1" * 32).encode() + b'","n":1e400}'),
                  ("/v1/jwt", b'{"sub":"user-1","ttl":999999999999999999999999999999999}'),
                  ("/v1/jwt", b'{"sub":"user-1","ttl":1e308}')]
        problems = []
        for path, body in bodies:
            try:
                with self.daemon.raw(timeout=5) as conn:
                    answer = conn.send(post(path, body)).response()
            except OSError as e:
                answer = e
            if not hasattr(answer, "status"):  # no answer: did it die?
                wait_for(lambda: self.daemon.process.poll() is not None, 2.0)
            if self.daemon.process.poll() is not None:
                problems.append(f"POST {path} {body.decode()}: the daemon exited with {self.daemon.process.returncode}"
                                f" ({self.daemon.stderr.strip().splitlines()[-1]})")
                self.daemon.process = None
                self.daemon.start()
                continue
            if not (hasattr(answer, "status") and answer.status == 400 and is_json_error(
                    (answer.status, answer.headers, answer.body))):
                problems.append(f"POST {path} {body.decode()}: {answer!r}")
        if problems:
            self.fail("\n".join(problems))


class JwksListenerTest(HostileTestCase):

    def test_malformed_requests_on_the_jwks_listener(self):
        cases = malformed_cases("/.well-known/jwks.json", "/.well-known/jwks.json", "tcp")
        canary_ok = lambda a: a[0] == 200 and json.loads(a[2]).get("status") == "ok"
        with self.attack(f"malformed HTTP x{len(cases)} (JWKS)") as run:
            self.run_table(("127.0.0.1", self.daemon.port), cases, http_request("GET", "/healthz"), canary_ok, run)
            self.assertEqual(self.daemon.public("GET", "/.well-known/jwks.json").status, 200)

    def test_slowloris_on_the_jwks_listener(self):
        with self.attack(f"slowloris x{JWKS_SLOWLORIS} (JWKS)") as run:
            self.slowloris(("127.0.0.1", self.daemon.port), JWKS_SLOWLORIS, run)
            self.assertEqual(self.daemon.public("GET", "/.well-known/jwks.json").status, 200)


if __name__ == "__main__":
    unittest.main()
