"""Helpers for test_hostile: a well-behaved issuer in its own process, probes of the daemon's resources,
and raw-socket attackers that hold thousands of connections without a thread each.

The well-behaved client runs as a separate Python process (`python3 hostile_support.py good-client ...`)
so that the attackers' work in the test process (and its GIL) never shows up as the daemon's latency. It
prints one JSON line per request: start time (CLOCK_MONOTONIC, shared by every process), latency,
status, and every so often the JWT it got, for the test to verify.
"""
import json
import os
import resource
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

MIB = 1024 * 1024


def env_int(name, default):
    return int(os.environ.get(name, default))


def env_float(name, default):
    return float(os.environ.get(name, default))


def raise_descriptor_limit(want):
    """Raises this process's soft RLIMIT_NOFILE towards `want` (never above the hard limit); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- the daemon's resources ----------------------------------------------------------------------

class ProcStats:
    def __init__(self, pid):
        fields = {}
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                fields[key] = value.split()
        self.rss_kib = int(fields["VmRSS"][0])
        self.hwm_kib = int(fields["VmHWM"][0])
        self.threads = int(fields["Threads"][0])
        self.fds = len(os.listdir(f"/proc/{pid}/fd"))

    def __repr__(self):
        return f"<rss {self.rss_kib} KiB, hwm {self.hwm_kib} KiB, fds {self.fds}, threads {self.threads}>"


def fd_targets(pid):
    """What each of the process's descriptors is ("socket:[123]", a path, ...), counted."""
    targets = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        kind = target.split(":[")[0] if ":[" in target else target
        targets[kind] = targets.get(kind, 0) + 1
    return targets


def wait_for(predicate, timeout, step=0.05):
    """Polls until predicate() is truthy or the time is up; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(step)


class PeakSampler:
    """Samples the daemon's RSS and descriptors in a thread: the peaks during an attack."""

    def __init__(self, pid, every=0.1):
        self.pid, self.every = pid, every
        self.peak_rss_kib = self.peak_fds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                stats = ProcStats(self.pid)
            except (FileNotFoundError, ProcessLookupError):
                return
            self.peak_rss_kib = max(self.peak_rss_kib, stats.rss_kib)
            self.peak_fds = max(self.peak_fds, stats.fds)
            self._stop.wait(self.every)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join()


# --- statistics --------------------------------------------------------------------------------------

def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil
    return ordered[int(rank) - 1]


class Window:
    """The well-behaved client's requests that started in [start, end)."""

    def __init__(self, records, start, end):
        self.records = [r for r in records if start <= r["t"] < end]
        self.latencies = [r["ms"] for r in self.records if r["status"] == 200]
        self.failures = [r for r in self.records if r["status"] != 200]

    @property
    def count(self):
        return len(self.records)

    def p(self, q):
        return percentile(self.latencies, q) if self.latencies else float("inf")

    def failure_summary(self):
        """The good client's failures, counted by what went wrong: "235 x 429 {...}, 1 x TimeoutError"."""
        kinds = {}
        for r in self.failures:
            key = f"{r['status']} {r['error'][:90]}" if r["status"] else r["error"][:120]
            kinds[key] = kinds.get(key, 0) + 1
        return ", ".join(f"{n} x {key}" for key, n in sorted(kinds.items(), key=lambda kv: -kv[1]))

    def summary(self):
        if not self.latencies:
            return f"{self.count} requests, none answered 200"
        return (f"{self.count} requests, p50 {self.p(50):.1f} ms, p99 {self.p(99):.1f} ms, "
                f"max {max(self.latencies):.1f} ms, {len(self.failures)} failed")


# --- the well-behaved client -------------------------------------------------------------------------

class GoodClient:
    """A well-behaved issuer in its own process: POST /v1/jwt due every `interval` seconds (one at a time;
    latency counts from when a request was due), each on a fresh connection (`mode="fresh"`, like curl)
    or on one kept-alive connection."""

    def __init__(self, socket_path, mode="fresh", interval=0.01, timeout=5.0, sample_every=10):
        self.args = [sys.executable, str(Path(__file__).resolve()), "good-client", str(socket_path), mode,
                     str(interval), str(timeout), str(sample_every)]
        self.timeout = timeout
        self.records = []
        self.lock = threading.Lock()
        self.process = None
        self.reader = None
        self.stderr = b""

    def start(self):
        self.process = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        return self

    def _read(self):
        for line in self.process.stdout:
            record = json.loads(line)
            with self.lock:
                self.records.append(record)

    def stop(self):
        """Ends the loop after the request in progress (a stalled one ends at its own timeout)."""
        if self.process is None:
            return
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=self.timeout + 5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.reader.join(timeout=5)
        self.stderr = self.process.stderr.read()
        self.process.stdout.close()
        self.process.stderr.close()
        self.process = None

    def window(self, start, end):
        with self.lock:
            return Window(list(self.records), start, end)

    def tokens(self):
        with self.lock:
            return [r["jwt"] for r in self.records if r.get("jwt")]


def _good_client_main(socket_path, mode, interval, timeout, sample_every):
    interval, timeout, sample_every = float(interval), float(timeout), int(sample_every)
    stop = threading.Event()

    def watch_stdin():
        sys.stdin.buffer.read()  # EOF when the test closes our stdin
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    conn, buffer = None, bytearray()
    n = 0
    first = time.monotonic()
    while not stop.is_set():
        n += 1
        body = json.dumps({"sub": f"good-{n}"}).encode()
        request = (b"POST /v1/jwt HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                   b"Content-Length: %d\r\n\r\n" % len(body)) + body
        # Requests are due on a fixed schedule; one that is late because the previous one was slow counts
        # from when it was due (no coordinated omission: a 1 s stall shows as ~1 s / interval slow requests,
        # not as one). Falling far behind (the test machine, not the daemon) restarts the schedule.
        scheduled = first + (n - 1) * interval
        started = time.monotonic()
        if started - scheduled > max(1.0, 2 * timeout):
            first, scheduled = started - (n - 1) * interval, started
        record = {"t": scheduled, "status": None, "error": None, "jwt": None}
        try:
            if conn is None:
                conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                conn.settimeout(timeout)
                conn.connect(socket_path)
                buffer = bytearray()
            conn.sendall(request)
            status, body = _read_answer(conn, buffer, started + timeout)
            record["status"] = status
            if status == 200:
                answer = json.loads(body)
                if n % sample_every == 1:
                    record["jwt"] = answer["jwt"]
            else:
                record["error"] = body[:200].decode("utf-8", "replace")
        except Exception as e:  # a stall, a reset, a refused connection: all failures of the good client
            record["error"] = f"{type(e).__name__}: {e}"
            if conn is not None:
                conn.close()
            conn = None
        done = time.monotonic()
        record["ms"] = (done - scheduled) * 1000
        record["service_ms"] = (done - started) * 1000
        if mode == "fresh" and conn is not None:
            conn.close()
            conn = None
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()
        rest = first + n * interval - time.monotonic()
        if rest > 0:
            stop.wait(rest)


def _read_answer(conn, buffer, deadline):
    while b"\r\n\r\n" not in buffer:
        _recv_into(conn, buffer, deadline)
    head, _, _ = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    end = len(head) + 4 + length
    while len(buffer) < end:
        _recv_into(conn, buffer, deadline)
    body = bytes(buffer[len(head) + 4:end])
    del buffer[:end]
    return status, body


def _recv_into(conn, buffer, deadline):
    conn.settimeout(max(0.01, deadline - time.monotonic()))
    chunk = conn.recv(65536)
    if not chunk:
        raise ConnectionError("the daemon closed the connection mid-answer")
    buffer += chunk


# --- many sockets at once ----------------------------------------------------------------------------

def connect_many(address, count):
    """`count` connected sockets (Unix path or (host, port)); the daemon accepts them as they come."""
    family = socket.AF_INET if isinstance(address, tuple) else socket.AF_UNIX
    target = address if family == socket.AF_INET else str(address)
    out = []
    try:
        for _ in range(count):
            s = socket.socket(family, socket.SOCK_STREAM)
            out.append(s)
            s.connect(target)
    except BaseException:
        close_all(out)
        raise
    return out


def close_all(sockets):
    for s in sockets:
        try:
            s.close()
        except OSError:
            pass


def parse_answer(data):
    """(status, headers dict, body) of one whole HTTP/1.1 answer at the front of `data`, and what follows;
    None when the answer is not all there."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    if len(rest) < length:
        return None
    return (status, headers, rest[:length]), rest[length:]


def collect_answers(sockets, within):
    """Reads every socket until the daemon closes it or `within` seconds pass (poll, no thread each).
    Returns {socket: (bytes received, closed by the daemon)}."""
    poller = select.poll()
    by_fd = {}
    for s in sockets:
        s.setblocking(False)
        poller.register(s, select.POLLIN | select.POLLHUP | select.POLLERR)
        by_fd[s.fileno()] = s
    received = {s: bytearray() for s in sockets}
    closed = {s: False for s in sockets}
    deadline = time.monotonic() + within
    open_count = len(sockets)
    while open_count and time.monotonic() < deadline:
        for fd, _ in poller.poll(max(1, int((deadline - time.monotonic()) * 1000))):
            s = by_fd[fd]
            try:
                chunk = s.recv(65536)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                chunk = b""
            if chunk:
                received[s] += chunk
            else:
                closed[s] = True
                poller.unregister(s)
                open_count -= 1
    for s in sockets:
        s.setblocking(True)
    return {s: (bytes(received[s]), closed[s]) for s in sockets}


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "good-client":
        _good_client_main(*sys.argv[2:])
    else:
        sys.exit("usage: hostile_support.py good-client SOCKET fresh|keepalive INTERVAL TIMEOUT SAMPLE_EVERY")
