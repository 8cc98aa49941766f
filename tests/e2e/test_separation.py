"""Privilege separation (issue 15): the process that parses HTTP never holds the token's secrets.

hsmsignd (the "front") parses HTTP and never loads the PKCS#11 module or reads the PIN; it starts
`[token] signers = N` child processes (`hsmsignd --signer --config FILE`, a socketpair end on fd 3) that
load the module, read the PIN, log in and sign. These tests prove, on the real daemon and a throw-away
SoftHSM token:

  - the front's address space maps no PKCS#11 module, while each signer's maps libsofthsm2.so (the
    positive control: the same check does see a module where one is loaded);
  - the PIN's bytes are nowhere in the front's memory (every readable mapping of /proc/PID/mem) nor in
    its environment, while each logged-in signer's memory does hold them (the positive control: the
    scan finds the PIN where it is);
  - a signer killed with SIGKILL under load makes requests fail fast (200 or a JSON 503, never a hang,
    never a signature that does not verify), is recorded in the audit log and in
    hsmsignd_signer_restarts_total, and is replaced by a new signer, after which requests succeed;
  - a signer spoken to directly over its socketpair answers hostile frames (unknown type, truncated
    payload, lengths past the frame, trailing bytes, unknown algorithm, wrong digest size, unknown key,
    an algorithm its keyset does not allow, an RSA size outside the rules) with typed error answers and
    keeps serving; a valid ES256 signature it makes verifies with the key's public key; a frame whose
    length field is past the limit makes it close the connection and exit non-zero, never hang.

Against a daemon without the split (one process, module loaded, PIN in memory) the first two fail on
the front's maps and the front's memory; every wait is bounded, so nothing here can hang.
"""
import http.client
import json
import os
import secrets
import signal
import socket
import struct
import subprocess
import threading
import time
import unittest

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from jwcrypto import jwk, jwt

import harness
from harness import PIN, Daemon, DaemonError

TWO_SIGNERS = {"signers": 2}
MODULE_WORDS = ("softhsm", "pkcs11")  # a mapped path naming either is a PKCS#11 module (or SoftHSM's own)
SIGNER_WAIT = 10.0  # the signers start beside the front; /healthz may answer before both are up
RESPAWN_WAIT = 5.0
REQUEST_TIMEOUT = 5.0
FRAME_TIMEOUT = 5.0
HELLO_TIMEOUT = harness.START_TIMEOUT  # a signer logs in before its hello


# --- processes ---------------------------------------------------------------------------------------

def read_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def argv_of(pid):
    data = read_bytes(f"/proc/{pid}/cmdline")
    return [a.decode(errors="replace") for a in data.split(b"\0") if a] if data else []


def children_of(pid):
    """The pids whose parent is pid: /proc/PID/task/*/children where the kernel has it, else a scan of
    /proc/*/stat (this kernel may be built without CONFIG_PROC_CHILDREN)."""
    found = set()
    task_dir = f"/proc/{pid}/task"
    files = 0
    try:
        for tid in os.listdir(task_dir):
            data = read_bytes(f"{task_dir}/{tid}/children")
            if data is not None:
                files += 1
                found |= {int(p) for p in data.split()}
    except OSError:
        return set()
    if files:
        return found
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = read_bytes(f"/proc/{entry}/stat")
            if stat:
                fields = stat[stat.rfind(b")") + 2:].split()
                if len(fields) > 1 and int(fields[1]) == pid:
                    found.add(int(entry))
    return found


def signers_of(pid):
    """The front's live children whose argv has --signer (a zombie has an empty cmdline: not counted)."""
    return sorted(child for child in children_of(pid) if "--signer" in argv_of(child))


def mapped_paths(pid):
    """The path of every file-backed (or named) mapping in /proc/PID/maps."""
    with open(f"/proc/{pid}/maps") as f:
        return [line.split(None, 5)[5].strip() for line in f if len(line.split(None, 5)) == 6]


def module_mappings(pid):
    return sorted({p for p in mapped_paths(pid) if any(w in p.lower() for w in MODULE_WORDS)})


def scan_memory(pid, needle):
    """Every readable mapping of /proc/PID/mem searched for needle. Returns (hits, regions_read,
    bytes_read): hits as (address, mapping name). Regions that cannot be read ([vvar], [vsyscall], a
    mapping gone meanwhile) are skipped; a /proc/PID/mem that cannot be opened raises."""
    regions = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            start, end = (int(x, 16) for x in parts[0].split("-"))
            if parts[1].startswith("r"):
                regions.append((start, end, parts[5].strip() if len(parts) == 6 else "[anonymous]"))
    hits, read_regions, read_total = [], 0, 0
    chunk = 1 << 20
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    try:
        for start, end, name in regions:
            if name in ("[vvar]", "[vvar_vclock]", "[vsyscall]"):
                continue
            tail = b""
            offset = start
            ok = False
            while offset < end:
                try:
                    data = os.pread(fd, min(chunk, end - offset), offset)
                except (OSError, OverflowError, ValueError):
                    break
                if not data:
                    break
                ok = True
                read_total += len(data)
                window = tail + data
                base = offset - len(tail)
                at = window.find(needle)
                while at >= 0:
                    hits.append((base + at, name))
                    at = window.find(needle, at + 1)
                tail = window[-(len(needle) - 1):] if len(needle) > 1 else b""
                offset += len(data)
            read_regions += ok
    finally:
        os.close(fd)
    return hits, read_regions, read_total


def describe_hits(hits, limit=8):
    return ", ".join(f"{addr:#x} in {name}" for addr, name in hits[:limit]) + (" ..." if len(hits) > limit else "")


class SeparationTestCase(unittest.TestCase):
    """A daemon of each test's own with two signers. At the end the front is killed first (if still
    running), then any signer of this daemon it left behind (a killed front cannot reap them), then the
    tempdir goes."""

    TOKEN = TWO_SIGNERS

    def setUp(self):
        self.daemon = Daemon(token=dict(self.TOKEN))
        self.addCleanup(self.daemon.cleanup)
        self.addCleanup(self.kill_leftover_signers)
        self.addCleanup(self.daemon.kill)
        try:
            self.daemon.start()
        except DaemonError as e:
            if "signers" in str(e):
                self.fail("this hsmsignd does not accept [token] signers, so it has no separate signer "
                          f"processes (issue 15 is not in it): {e}")
            raise

    def kill_leftover_signers(self):
        """Processes whose argv is --signer with this test's own config file (a path in its tempdir)."""
        config = str(self.daemon.config_path)
        for entry in os.listdir("/proc"):
            if entry.isdigit() and "--signer" in (argv := argv_of(int(entry))) and config in argv:
                try:
                    os.kill(int(entry), signal.SIGKILL)
                except OSError:
                    pass

    @property
    def front(self):
        return self.daemon.process.pid

    def signers(self):
        return signers_of(self.front)

    def wait_for_signers(self, count, timeout=SIGNER_WAIT):
        deadline = time.monotonic() + timeout
        found = self.signers()
        while len(found) != count and time.monotonic() < deadline:
            time.sleep(0.05)
            found = self.signers()
        self.assertEqual(len(found), count,
                         f"the front (pid {self.front}) has {len(found)} signer children (argv with --signer), "
                         f"not {count}, {timeout} s after it started: {found}; all its children: "
                         f"{ {c: argv_of(c) for c in children_of(self.front)} }\nstderr:\n{self.daemon.stderr}")
        return found

    def issue_one(self):
        answer = self.daemon.post("/v1/jwt", {"sub": "u"}, timeout=REQUEST_TIMEOUT)
        self.assertEqual(answer.status, 200, f"POST /v1/jwt before looking at the processes: {answer}")
        harness.verify_jwt(answer.json["jwt"], self.daemon.jwks_json(), "ES256")


class ModuleMappingTest(SeparationTestCase):
    def test_the_front_never_maps_the_module_and_the_signers_do(self):
        self.issue_one()
        front_modules = module_mappings(self.front)
        if front_modules:
            self.fail(f"the front (pid {self.front}) maps a PKCS#11 module, after signing a JWT; it must "
                      f"leave the module to its signers: {front_modules}")
        signers = self.wait_for_signers(2)
        for pid in signers:
            with self.subTest(signer=pid):
                paths = mapped_paths(pid)
                if not any(p.endswith("libsofthsm2.so") for p in paths):
                    self.fail(f"signer {pid} ({argv_of(pid)}) does not map libsofthsm2.so, so it cannot sign (and "
                              f"the check that found nothing in the front proves nothing); its mappings: "
                              f"{sorted(set(paths))}")


class PinInMemoryTest(SeparationTestCase):
    def test_the_pin_is_in_the_signers_memory_never_in_the_fronts(self):
        self.issue_one()  # the signers have logged in and signed
        needle = PIN.encode()
        hits, regions, total = scan_memory(self.front, needle)
        self.assertGreater(total, 0, f"not one byte of the front's (pid {self.front}) memory could be read: "
                                     "the scan proves nothing")
        if hits:
            self.fail(f"the front (pid {self.front}) holds the PIN {len(hits)} time(s) in its memory "
                      f"({regions} regions, {total} bytes read): {describe_hits(hits)}; only the signers "
                      "may read it")
        environ = read_bytes(f"/proc/{self.front}/environ")
        self.assertIsNotNone(environ, f"/proc/{self.front}/environ cannot be read")
        self.assertNotIn(needle, environ, f"the front's environment (pid {self.front}) holds the PIN")
        for pid in self.wait_for_signers(2):
            with self.subTest(signer=pid):
                hits, regions, total = scan_memory(pid, needle)
                if not hits:
                    self.fail(f"signer {pid} is logged in, but the scan found no PIN in its memory ({regions} "
                              f"regions, {total} bytes read): either the scan cannot see it (and proves nothing "
                              "about the front) or the signer is not the one that logged in")


# --- a signer killed under load ----------------------------------------------------------------------

class Load:
    """threads issuers, each with its own kept-alive connection, until stop(); every request bounded
    by REQUEST_TIMEOUT."""

    def __init__(self, daemon, threads=32):
        self.daemon = daemon
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.answers = []  # (sent at, took, Response)
        self.timeouts = []  # (sent at, repr)
        self.broken = []  # (sent at, repr): the connection failed without an answer
        self.workers = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(threads)]

    def start(self):
        for w in self.workers:
            w.start()
        return self

    def run(self, index):
        conn = None
        n = 0
        while not self.stopping.is_set():
            if conn is None:
                conn = self.daemon.connection(timeout=REQUEST_TIMEOUT)
            sent = time.monotonic()
            try:
                answer = conn.call("POST", "/v1/jwt", {"sub": f"load-{index}-{n}"})
                with self.lock:
                    self.answers.append((sent, time.monotonic() - sent, answer))
            except (socket.timeout, TimeoutError) as e:
                with self.lock:
                    self.timeouts.append((sent, repr(e)))
                conn.close()
                conn = None
            except (OSError, http.client.HTTPException) as e:
                with self.lock:
                    self.broken.append((sent, repr(e)))
                conn.close()
                conn = None
            n += 1
        if conn is not None:
            conn.close()

    def stop(self):
        """Stops the issuers; the ones still running after a bound (hung) are returned."""
        self.stopping.set()
        deadline = time.monotonic() + REQUEST_TIMEOUT + 2
        for w in self.workers:
            w.join(timeout=max(0.0, deadline - time.monotonic()))
        return [w for w in self.workers if w.is_alive()]


def metric_values(text, name):
    """The values of every sample of a metric (any labels), from the Prometheus text format."""
    values = []
    for line in text.splitlines():
        if line.startswith(name) and line[len(name):len(name) + 1] in ("{", " "):
            values.append(float(line.rsplit(None, 1)[1]))
    return values


ERROR_EVENT = '"event":"error"'


class KilledSignerTest(SeparationTestCase):
    LOAD_SECONDS = 3.0

    def wait_until(self, condition, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            result = condition()
            if result:
                return result
            if time.monotonic() >= deadline:
                what = what() if callable(what) else what
                self.fail(f"not within {timeout} s: {what}\nstderr:\n{self.daemon.stderr}")
            time.sleep(0.05)

    def audit_lines(self):
        path = self.daemon.workdir / "log" / "audit.jsonl"
        return path.read_text().splitlines() if path.exists() else []

    def test_a_killed_signer_fails_fast_and_comes_back(self):
        self.issue_one()
        before = self.wait_for_signers(2)
        victim = before[0]
        load = Load(self.daemon).start()
        started = time.monotonic()
        time.sleep(self.LOAD_SECONDS / 2)
        self.assertIn(victim, self.signers(), f"signer {victim} is gone before the test killed it")
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        # Watch for the replacement while the load goes on (and after it, up to RESPAWN_WAIT).
        respawned, replacement = None, []
        while time.monotonic() < started + self.LOAD_SECONDS:
            if not replacement and (replacement := [p for p in self.signers() if p not in before]):
                respawned = time.monotonic()
            time.sleep(0.02)
        hung = load.stop()
        while not replacement and time.monotonic() < killed + RESPAWN_WAIT:
            if replacement := [p for p in self.signers() if p not in before]:
                respawned = time.monotonic()
            else:
                time.sleep(0.02)

        self.assertEqual(hung, [], f"{len(hung)} issuer thread(s) still waiting {REQUEST_TIMEOUT + 2} s after the "
                                   "load stopped")
        self.assertEqual(load.timeouts, [],
                         f"{len(load.timeouts)} request(s) got no answer within {REQUEST_TIMEOUT} s after signer "
                         f"{victim} was killed (at {killed - started:.2f} s): first "
                         f"{[(round(t - started, 2), e) for t, e in load.timeouts[:5]]}")
        self.assertEqual(load.broken, [],
                         f"{len(load.broken)} request(s) lost their connection instead of an answer: first "
                         f"{[(round(t - started, 2), e) for t, e in load.broken[:5]]}")
        self.assertGreaterEqual(len(load.answers), 32, f"only {len(load.answers)} answers in {self.LOAD_SECONDS} s")
        statuses = {}
        for _, _, answer in load.answers:
            statuses[answer.status] = statuses.get(answer.status, 0) + 1
        self.assertLessEqual(set(statuses), {200, 503}, f"answers other than 200 and 503: {statuses}")
        for _, _, answer in load.answers:
            if answer.status == 503:
                try:
                    body = answer.json
                except ValueError:
                    self.fail(f"a 503 whose body is not JSON: {answer}")
                self.assertIsInstance(body, dict, answer)
                self.assertIn("error", body, f"a 503 without an \"error\": {answer}")
        keyset = jwk.JWKSet.from_json(self.daemon.jwks_json())
        bad = []
        for _, _, answer in load.answers:
            if answer.status == 200:
                try:
                    jwt.JWT(jwt=answer.json["jwt"], key=keyset, algs=["ES256"])
                except Exception as e:  # jwcrypto raises several types; any of them is a bad token
                    bad.append(f"{answer.json.get('jwt', answer)[:60]}...: {e!r}")
        self.assertEqual(bad, [], f"{len(bad)} of {statuses.get(200, 0)} JWTs answered 200 do not verify "
                                  f"against the JWKS: {bad[:3]}")

        self.assertTrue(replacement, f"no new signer child (argv with --signer, a pid other than {before}) within "
                                     f"{RESPAWN_WAIT} s after signer {victim} was killed; signers now: "
                                     f"{self.signers()}\nstderr:\n{self.daemon.stderr}")
        print(f"\n  killed signer: {statuses} in {self.LOAD_SECONDS} s, slowest "
              f"{max(t for _, t, _ in load.answers) * 1000:.0f} ms; new signer {replacement} "
              f"{(respawned - killed) * 1000:.0f} ms after the kill", flush=True)
        now = self.wait_for_signers(2, timeout=RESPAWN_WAIT)
        self.assertNotIn(victim, now, f"the killed signer {victim} is still listed as a live signer")

        def error_about_signer():
            for line in self.audit_lines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("event") == "error" and "signer" in line:
                    return line
            return None
        self.wait_until(error_about_signer, 5.0,
                        lambda: "an audit line with \"event\": \"error\" that names the signer killed; the log's "
                                f"error lines: {[line for line in self.audit_lines() if ERROR_EVENT in line]}")

        metrics = self.daemon.get("/metrics", timeout=REQUEST_TIMEOUT)
        self.assertEqual(metrics.status, 200, metrics)
        restarts = metric_values(metrics.body.decode(), "hsmsignd_signer_restarts_total")
        self.assertTrue(restarts, "no hsmsignd_signer_restarts_total sample in /metrics")
        self.assertGreaterEqual(sum(restarts), 1, f"hsmsignd_signer_restarts_total is {restarts} after a restart")

        # The signers serve again: a first 200, then a concurrent round in which every request succeeds.
        self.wait_until(lambda: self.daemon.post("/v1/jwt", {"sub": "back"}, timeout=REQUEST_TIMEOUT).status == 200,
                        5.0, "a 200 for POST /v1/jwt after the new signer started")
        after = Load(self.daemon, threads=8).start()
        time.sleep(1.0)
        self.assertEqual(after.stop(), [], "issuer threads hung after the restart")
        self.assertEqual((after.timeouts, after.broken), ([], []),
                         "requests failed without an answer after the restart")
        refused = [a for _, _, a in after.answers if a.status != 200]
        self.assertEqual(refused, [], f"{len(refused)} of {len(after.answers)} requests refused after the restart")
        self.assertTrue(after.answers, "no answer at all after the restart")
        for _, _, answer in after.answers:
            jwt.JWT(jwt=answer.json["jwt"], key=keyset, algs=["ES256"])

        self.assertIsNone(self.daemon.process.poll(), f"the front exited:\n{self.daemon.stderr}")
        status = self.daemon.stop()
        self.assertEqual(status, 0, f"the daemon did not stop cleanly:\n{self.daemon.stderr}")
        out = self.daemon.ctl("audit", "verify", str(self.daemon.workdir / "log" / "audit.jsonl"))
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)


# --- a signer spoken to directly ---------------------------------------------------------------------

MAX_FRAME = 1_049_600
T_SIGN, T_LIST_KEYS, T_LIST_PUBLIC_KEYS, T_GENERATE, T_EXPORT, T_SET_LABEL, T_DESTROY, T_STATS = range(1, 9)
T_OK, T_ERROR, T_HELLO, T_FATAL = 128, 129, 160, 161
ES256, ES384, RS256, PS256, EDDSA = range(5)
KIND_TOKEN, KIND_BUSY, KIND_REFUSED, KIND_NOT_FOUND, KIND_CONFIG = range(5)
KINDS = {0: "token", 1: "busy", 2: "refused", 3: "not_found", 4: "config"}


def frame(frame_id, frame_type, payload=b""):
    return struct.pack("<IIB", 5 + len(payload), frame_id, frame_type) + payload


def bstr(data):
    return struct.pack("<I", len(data)) + data


class Reader:
    """Pulls fields off a payload; raises AssertionError (a test failure) when it is short."""

    def __init__(self, data):
        self.data, self.at = data, 0

    def take(self, n):
        if self.at + n > len(self.data):
            raise AssertionError(f"payload of {len(self.data)} bytes too short for {n} more at {self.at}: "
                                 f"{self.data.hex()}")
        out = self.data[self.at:self.at + n]
        self.at += n
        return out

    def u8(self):
        return self.take(1)[0]

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def u64(self):
        return struct.unpack("<Q", self.take(8))[0]

    def bytes(self):
        return self.take(self.u32())


class SignerProcess:
    """hsmsignd --signer on one end of a socketpair, as the front would start it."""

    def __init__(self, daemon):
        self.daemon = daemon
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        child_fd = child.fileno()

        def onto_fd_3():
            if child_fd == 3:
                os.set_inheritable(3, True)
            else:
                os.dup2(child_fd, 3)  # the copy is inheritable; the original is close-on-exec

        self.stderr_path = daemon.workdir / "signer.stderr.log"
        with open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(
                [harness.hsmsignd_bin(), "--signer", "--config", str(daemon.config_path)], env=daemon.token_env,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, close_fds=False,
                preexec_fn=onto_fd_3)
        child.close()
        self.sock = parent
        self.sock.settimeout(FRAME_TIMEOUT)
        self.buffer = bytearray()

    @property
    def stderr(self):
        return self.stderr_path.read_text(errors="replace")

    def status(self):
        code = self.process.poll()
        return "still running" if code is None else f"exited with {code}"

    def where(self):
        return f"(signer {self.status()}; stderr:\n{self.stderr})"

    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise AssertionError(f"cannot send to the signer: {e!r} {self.where()}") from None

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no complete frame from the signer within the bound {self.where()}")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            raise AssertionError(f"no complete frame from the signer within the bound {self.where()}") from None
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            try:
                self.process.wait(timeout=1)  # to say how it exited
            except subprocess.TimeoutExpired:
                pass
            raise AssertionError(f"the signer closed the connection (after {len(self.buffer)} bytes of a frame) "
                                 f"{self.where()}")
        self.buffer += chunk

    def receive(self, timeout=FRAME_TIMEOUT):
        """One frame: (id, type, payload)."""
        deadline = time.monotonic() + timeout
        while len(self.buffer) < 4:
            self._fill(deadline)
        length = struct.unpack("<I", self.buffer[:4])[0]
        if not 5 <= length <= MAX_FRAME:
            raise AssertionError(f"the signer sent a frame whose length field is {length}")
        while len(self.buffer) < 4 + length:
            self._fill(deadline)
        body, self.buffer = bytes(self.buffer[4:4 + length]), self.buffer[4 + length:]
        frame_id, frame_type = struct.unpack("<IB", body[:5])
        return frame_id, frame_type, body[5:]

    def close(self):
        self.sock.close()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


class HostileFramesTest(unittest.TestCase):
    def setUp(self):
        # Two keysets: "default" (ES256) holds the key generated here, "rsa" (RS256) the refused size.
        self.daemon = Daemon(keysets=(("default", "ES256"), ("rsa", "RS256")))
        self.addCleanup(self.daemon.cleanup)
        self.daemon.write_config()
        self.signer = SignerProcess(self.daemon)
        self.addCleanup(self.signer.close)
        self.next_id = 1

    def call(self, what, frame_type, payload=b""):
        """Sends one request; returns (type, payload) of the answer, which must carry the request's id."""
        frame_id = self.next_id
        self.next_id += 1
        try:
            self.signer.send(frame(frame_id, frame_type, payload))
            got_id, got_type, got_payload = self.signer.receive()
        except AssertionError as e:
            raise AssertionError(f"{what} (request id {frame_id}, type {frame_type}, payload {payload.hex()[:80]}): "
                                 f"{e}") from None
        self.assertEqual(got_id, frame_id, f"{what}: the answer (type {got_type}, {got_payload.hex()}) carries id "
                                           f"{got_id}, not the request's {frame_id}")
        return got_type, got_payload

    def ok(self, what, frame_type, payload=b""):
        got_type, got_payload = self.call(what, frame_type, payload)
        if got_type == T_ERROR:
            self.fail(f"{what}: an error answer {self.error_text(got_payload)}, not ok")
        self.assertEqual(got_type, T_OK, f"{what}: answer type {got_type}, not {T_OK} ok: {got_payload.hex()}")
        return got_payload

    @staticmethod
    def parse_error(payload):
        r = Reader(payload)
        return r.u8(), r.bytes().decode(errors="replace"), r.u64(), r.bytes().decode(errors="replace")

    def error_text(self, payload):
        kind, function, rv, detail = self.parse_error(payload)
        return f"kind {kind} ({KINDS.get(kind, '?')}), function {function!r}, rv {rv:#x}, detail {detail!r}"

    def error(self, what, frame_type, payload=b"", kind=None):
        got_type, got_payload = self.call(what, frame_type, payload)
        self.assertEqual(got_type, T_ERROR, f"{what}: answer type {got_type} ({got_payload.hex()}), not {T_ERROR} "
                                            "error")
        got_kind, function, rv, detail = self.parse_error(got_payload)
        if kind is not None:
            self.assertEqual(got_kind, kind, f"{what}: {self.error_text(got_payload)}, not kind {kind} "
                                             f"({KINDS[kind]})")
        self.assertIsNone(self.signer.process.poll(), f"{what}: the signer exited {self.signer.where()}")
        # The signer still serves.
        self.ok(f"stats after {what}", T_STATS)

    def sign_payload(self, alg, digest, key_id, data, hash_code=None, padding=None):
        """A sign request; hash and padding default to the algorithm's own (SHA-384 for ES384, else SHA-256;
        PKCS #1 v1.5 for RS256, PSS for PS256, none for EC)."""
        hash_code = (1 if alg == ES384 else 0) if hash_code is None else hash_code
        padding = {RS256: 1, PS256: 2}.get(alg, 0) if padding is None else padding
        return bytes([alg, digest, hash_code, padding]) + bstr(key_id) + bstr(data)

    def test_hostile_frames_get_typed_errors_and_the_signer_keeps_serving(self):
        hello_id, hello_type, hello = self.signer.receive(timeout=HELLO_TIMEOUT)
        if hello_type == T_FATAL:
            r = Reader(hello)
            status, message = r.u8(), r.bytes().decode(errors="replace")
            self.fail(f"the signer could not start (fatal, exit status {status}): {message} {self.signer.where()}")
        self.assertEqual((hello_id, hello_type), (0, T_HELLO), f"the first frame is not a hello event: {hello.hex()}")
        self.ok("stats", T_STATS)
        self.ok("list_keys", T_LIST_KEYS)
        self.ok("list_public_keys", T_LIST_PUBLIC_KEYS)

        key_id = secrets.token_bytes(16)
        now = int(time.time())
        self.ok("generate an ES256 key", T_GENERATE,
                bytes([ES256]) + struct.pack("<I", 0) + bstr(key_id) + bstr(f"hsmsignd/default/{now}/{now}".encode()))
        digest = hashes.Hash(hashes.SHA256())
        digest.update(b"the signer signs this")
        digest = digest.finalize()

        self.error("an unknown request type (77)", 77)
        self.error("a sign with a 1-byte payload", T_SIGN, b"\x00")
        self.error("a sign whose key_id length (0xFFFFFFFF) is past the frame", T_SIGN,
                   bytes([ES256, 1, 0, 0]) + struct.pack("<I", 0xFFFFFFFF) + key_id)
        self.error("a list_keys with a trailing byte", T_LIST_KEYS, b"\x00")
        self.error("a sign with algorithm 9", T_SIGN, self.sign_payload(9, 1, key_id, digest))
        self.error("an ES256 sign of a 5-byte digest", T_SIGN, self.sign_payload(ES256, 1, key_id, b"12345"))
        self.error("a sign by a key id no key has", T_SIGN,
                   self.sign_payload(ES256, 1, secrets.token_bytes(16), digest), kind=KIND_NOT_FOUND)
        self.error("an RS256 sign by an ES256 key of the ES256 keyset", T_SIGN,
                   self.sign_payload(RS256, 1, key_id, digest), kind=KIND_REFUSED)
        # A jwt keyset's key signs its algorithm's own digests only: a SHA-512 digest is refused by the
        # signer too, not only by the front.
        self.error("a SHA-512 digest for a key of the jwt keyset", T_SIGN,
                   self.sign_payload(ES256, 1, key_id, digest * 2, hash_code=2), kind=KIND_REFUSED)
        self.error("a PSS padding for an EC key", T_SIGN,
                   self.sign_payload(ES256, 1, key_id, digest, padding=2))
        self.error("an RS256 generate of 1234 bits", T_GENERATE,
                   bytes([RS256]) + struct.pack("<I", 1234) + bstr(secrets.token_bytes(16))
                   + bstr(f"hsmsignd/rsa/{now}/{now}".encode()), kind=KIND_REFUSED)

        # Key operations beyond what the front ever asks for.
        self.error("a generate of an RS256 key for the ES256 keyset", T_GENERATE,
                   bytes([RS256]) + struct.pack("<I", 2048) + bstr(secrets.token_bytes(16))
                   + bstr(f"hsmsignd/default/{now}/{now}".encode()), kind=KIND_REFUSED)
        self.error("a generate for a keyset the configuration does not have", T_GENERATE,
                   bytes([ES256]) + struct.pack("<I", 0) + bstr(secrets.token_bytes(16))
                   + bstr(f"hsmsignd/nosuch/{now}/{now}".encode()), kind=KIND_REFUSED)
        self.error("a generate with a label that is not hsmsignd's", T_GENERATE,
                   bytes([ES256]) + struct.pack("<I", 0) + bstr(secrets.token_bytes(16)) + bstr(b"someone-else"),
                   kind=KIND_REFUSED)
        self.error("a relabel that moves the key to another keyset", T_SET_LABEL,
                   bstr(key_id) + bstr(f"hsmsignd/rsa/{now}/{now}/retired".encode()), kind=KIND_REFUSED)
        self.error("a relabel that changes its activation", T_SET_LABEL,
                   bstr(key_id) + bstr(f"hsmsignd/default/{now - 3600}/{now}".encode()), kind=KIND_REFUSED)
        self.ok("stats after the refused key operations", T_STATS)

        # A valid signature, checked with the key's public key.
        exported = Reader(self.ok("export_public_key", T_EXPORT, bstr(key_id) + bytes([ES256])))
        self.assertEqual(exported.u8(), ES256, "export_public_key: the key's algorithm")
        point = exported.bytes()
        self.assertEqual((len(point), point[:1]), (65, b"\x04"), f"an uncompressed P-256 point: {point.hex()}")
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        signed = Reader(self.ok("an ES256 sign of a SHA-256 digest", T_SIGN,
                                self.sign_payload(ES256, 1, key_id, digest)))
        signature = signed.bytes()
        self.assertEqual(len(signature), 64, f"an ES256 signature is r||s, 64 bytes: {signature.hex()}")
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        try:
            public.verify(utils.encode_dss_signature(r, s), digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        except InvalidSignature:
            self.fail(f"the signer's ES256 signature {signature.hex()} does not verify with the key's public key")

        # An oversize frame: the signer closes the connection and exits non-zero.
        self.signer.send(struct.pack("<I", 0xFFFFFFFF) + struct.pack("<IB", self.next_id, T_STATS))
        deadline = time.monotonic() + FRAME_TIMEOUT
        closed, extra = False, b""
        while time.monotonic() < deadline:
            self.signer.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.signer.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                break
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                closed = True
                break
            extra += chunk
        self.assertTrue(closed, f"the signer kept the connection open {FRAME_TIMEOUT} s after a frame of length "
                                f"0xFFFFFFFF (sent {extra.hex()[:200]}) {self.signer.where()}")
        try:
            code = self.signer.process.wait(timeout=FRAME_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail(f"the signer closed the connection but did not exit within {FRAME_TIMEOUT} s")
        self.assertNotEqual(code, 0, f"the signer exited 0 after an oversize frame:\n{self.signer.stderr}")


if __name__ == "__main__":
    unittest.main()
