"""The audit log on the real daemon: the hash chain, its records, signed checkpoints checked independently of
hsmsignctl, tampering caught by `hsmsignctl audit verify`, rotation, a log that cannot be written, and
restarts (clean, kill -9, a torn last line).

The reference rules (contract "Audit log", daemon/audit/chain.cpp): every line is JSON with `seq`, `time`,
`event`, ... and `prev` = lowercase hex SHA-256 of the previous line's bytes without its newline (64 zeros for
the first); a checkpoint line carries `kid`, `alg`, `head` (= its prev) and `signature`, the raw r||s ES256
signature (base64url) of "hsmsignd audit checkpoint\\n<seq>\\n<time>\\n<head>" by the audit key, whose public
JWK is written to FILE.key.jwk.
"""
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jwcrypto import jwk

from harness import (AUDIENCES, Daemon, FreshDaemonTestCase, UnixHTTPConnection, as_uid, b64url, b64url_decode, raw_as_uid,
                     client, hsmsignctl_bin, verify_jws, verify_jwt)

NOBODY = 65534        # no [[client]]: denied
SECOND_UID = 65533    # the second client's uid (a real, different peer through setpriv)
GENESIS = "0" * 64

# --- the log, read and checked in Python -------------------------------------------------------------------

def sha256_hex(line: str) -> str:
    return hashlib.sha256(line.encode()).hexdigest()


def read_lines(path):
    """The lines of a log file, without newlines; the file must end with one (or be empty)."""
    data = Path(path).read_bytes().decode()
    if not data:
        return []
    assert data.endswith("\n"), f"{path} does not end with a newline"
    return data[:-1].split("\n")


def records(path):
    return [json.loads(line) for line in read_lines(path)]


def write_lines(path, lines):
    Path(path).write_text("".join(line + "\n" for line in lines))


def chain_errors(lines, first_prev=GENESIS, first_seq=1):
    """My own check of the chain: the first problem, or None."""
    prev, seq = first_prev, first_seq
    for number, line in enumerate(lines, 1):
        try:
            r = json.loads(line)
        except ValueError:
            return f"line {number}: not JSON"
        if r.get("seq") != seq:
            return f"line {number}: seq {r.get('seq')}, expected {seq}"
        if r.get("prev") != prev:
            return f"line {number}: prev {r.get('prev')}, expected {prev}"
        if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", r.get("time", "")):
            return f"line {number}: time {r.get('time')!r} is not RFC 3339 UTC with microseconds"
        prev, seq = sha256_hex(line), seq + 1
    return None


def checkpoint_message(seq, time_text, head):
    return f"hsmsignd audit checkpoint\n{seq}\n{time_text}\n{head}".encode()


def load_audit_key(log_file):
    """(kid, cryptography public key) from FILE.key.jwk, the kid checked against the RFC 7638 thumbprint."""
    text = Path(f"{log_file}.key.jwk").read_text()
    key = jwk.JWK.from_json(text)
    published = json.loads(text)
    assert published["kty"] == "EC" and published["crv"] == "P-256", published
    assert "d" not in published, "the audit key file holds a private key"
    assert published.get("kid") == key.thumbprint(), "FILE.key.jwk: kid is not the key's thumbprint"
    return published["kid"], key.get_op_key("verify")


def checkpoint_verifies(public_key, record):
    """The independent check of a checkpoint line: ES256 over the message rebuilt here."""
    raw = b64url_decode(record["signature"])
    if len(raw) != 64:
        return False
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        public_key.verify(der, checkpoint_message(record["seq"], record["time"], record["head"]),
                          ec.ECDSA(hashes.SHA256()))
        return True
    except InvalidSignature:
        return False


# --- hsmsignctl audit verify -----------------------------------------------------------------------------

def audit_verify(*files, key=None):
    args = [hsmsignctl_bin(), "audit", "verify"] + (["--key", str(key)] if key else []) + [str(f) for f in files]
    return subprocess.run(args, capture_output=True, text=True, timeout=30)


def parse_verify(stdout):
    """What `audit verify` reports on success."""
    m = re.search(r"^ok: (\d+) lines from seq (\d+), (\d+) signed checkpoints \(audit key (\S+)\)$", stdout, re.M)
    assert m, f"no ok line in {stdout!r}"
    u = re.search(r"^(\d+) lines after the last checkpoint are chained but not yet covered", stdout, re.M)
    assert u, f"no uncovered count in {stdout!r}"
    out = {"lines": int(m[1]), "first_seq": int(m[2]), "checkpoints": int(m[3]), "audit_kid": m[4],
           "uncovered": int(u[1]), "by_kid": {}, "by_client": {}}
    section = None
    for line in stdout.splitlines():
        if line == "signatures by key:":
            section = out["by_kid"]
        elif line == "signatures by client:":
            section = out["by_client"]
        elif section is not None and line.startswith("  "):
            name, count = line.split()
            section[name] = int(count)
    return out


def rotated_files(log_file):
    """FILE.<first seq> files, oldest first."""
    log_file = Path(log_file)
    found = [p for p in log_file.parent.iterdir()
             if p.name.startswith(log_file.name + ".") and p.name[len(log_file.name) + 1:].isdigit()]
    return sorted(found, key=lambda p: int(p.name.rpartition(".")[2]))


# --- talking to the daemon -----------------------------------------------------------------------------------

def log_file(daemon):
    return daemon.workdir / daemon.config["audit"]["file"]


def admin_socket(daemon):
    return daemon.workdir / daemon.config["server"]["admin_socket"]


def admin(daemon, method, path, body=None):
    conn = UnixHTTPConnection(admin_socket(daemon), timeout=30)
    try:
        return conn.call(method, path, body)
    finally:
        conn.close()


def wait_for(predicate, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def sighup_and_wait(daemon):
    """SIGHUP; returns the rotated file once it appears."""
    before = set(rotated_files(log_file(daemon)))
    daemon.process.send_signal(signal.SIGHUP)
    found = []
    def rotated():
        found[:] = set(rotated_files(log_file(daemon))) - before
        return found and log_file(daemon).exists()
    wait_for(rotated, "the rotated log file and its successor")
    return found[0]


def expect_equal(actual, expected, context=""):
    """assertEqual outside a test method (the recorded run happens in setUpClass)."""
    if actual != expected:
        raise AssertionError(f"{actual!r} != {expected!r}: {context}")


def digest_of(text):
    return b64url(hashlib.sha256(text.encode()).digest())


class Issued:
    """What the daemon answered 200, to compare the log with."""

    def __init__(self):
        self.jwt, self.jws, self.sign = [], [], []   # (client name, request, answer json)

    def all(self):
        return self.jwt + self.jws + self.sign

    def by_kid(self):
        out = {}
        for _, _, a in self.all():
            out[a["kid"]] = out.get(a["kid"], 0) + 1
        return out

    def by_client(self):
        out = {}
        for name, _, _ in self.all():
            out[name] = out.get(name, 0) + 1
        return out


# --- one recorded run: most tests read its log ----------------------------------------------------------

_RECORDED = None


def tearDownModule():
    if _RECORDED is not None:
        _RECORDED.daemon.cleanup()
        shutil.rmtree(_RECORDED.tmp, ignore_errors=True)


class RecordedRun(unittest.TestCase):
    """Two clients (uid 0 "e2e" and uid 65533 "second"), a denied peer (65534), JWTs, JWSs and raw signatures,
    an immediate rotation between batches, a checkpoint over the admin socket, a few more tokens, SIGTERM."""

    @classmethod
    def setUpClass(cls):
        # Recorded once for the module; ChainTest and TamperTest read the same log.
        global _RECORDED
        if _RECORDED is None:
            run = type("Run", (), {})
            run.daemon = Daemon(keysets=[("default", "ES256")],
                                clients=[client(name="e2e", keysets=["default"]),
                                         client(name="second", uids=[SECOND_UID], keysets=["default"],
                                                operations=["jwt", "sign"])])
            try:
                RecordedRun.record(run)
            except BaseException:
                run.daemon.cleanup()
                raise
            run.file = log_file(run.daemon)
            run.lines = read_lines(run.file)
            run.records = [json.loads(line) for line in run.lines]
            run.tmp = Path(tempfile.mkdtemp(prefix="e2e-audit-"))
            _RECORDED = run
        for name, value in vars(_RECORDED).items():
            if not name.startswith("__"):
                setattr(cls, name, value)

    @staticmethod
    def record(t):
        d = t.daemon
        d.start()
        t.issued = issued = Issued()
        t.refused_bodies = []

        def ok(kind, body, name="e2e"):
            path = {"jwt": "/v1/jwt", "jws": "/v1/jws", "sign": "/v1/sign"}[kind]
            answer = d.post(path, body)
            expect_equal(answer.status, 200, answer)
            getattr(issued, kind).append((name, body, answer.json))

        for i in range(4):
            ok("jwt", {"sub": f"user-{i}", "aud": AUDIENCES[i % 2]})
        ok("jwt", {"sub": "user-both", "aud": list(AUDIENCES)})  # an array "aud", in the claims and the line
        for i in range(2):
            ok("jws", {"payload": b64url(f"payload-{i}".encode())})
        for i in range(2):
            ok("sign", {"digest": digest_of(f"message-{i}")})
        # Refused by policy: no issue line may exist for these.
        for body in ({"sub": "refused-aud", "aud": "not-an-audience"}, {"sub": "refused-ttl", "ttl": 100000}):
            answer = d.post("/v1/jwt", body)
            expect_equal(answer.status in (400, 403), True, answer)
            t.refused_bodies.append(body)
        # The second client, a real other uid.
        served = [["POST", "/v1/jwt", {"sub": "second-0"}], ["POST", "/v1/jwt", {"sub": "second-1"}],
                  ["POST", "/v1/sign", {"digest": digest_of("second-message")}]]
        refused = ["POST", "/v1/jws", {"payload": b64url(b"second not allowed jws")}]  # not among its operations
        answers = as_uid(SECOND_UID, d.socket_path, served + [refused])
        for (_, path, body), answer in zip(served, answers):
            expect_equal(answer["status"], 200, answer)
            getattr(issued, path.rpartition("/")[2]).append(("second", body, json.loads(answer["body"])))
        expect_equal(answers[-1]["status"], 403, answers[-1])
        # A peer that is no client.
        t.denied = as_uid(NOBODY, d.socket_path, [["POST", "/v1/jwt", {"sub": "nobody"}]])[0]
        expect_equal(t.denied["status"], 403, t.denied)
        t.first_kid = issued.jwt[0][2]["kid"]

        out = d.ctl("rotate", "default", "--immediate")
        expect_equal(out.returncode, 0, out.stderr)
        t.rotated_kid = out.stdout.strip()
        for i in range(3):
            ok("jwt", {"sub": f"after-rotation-{i}"})
        ok("jws", {"payload": b64url(b"after rotation")})
        ok("sign", {"digest": digest_of("after rotation")})

        answer = admin(d, "POST", "/v1/admin/checkpoint", {})
        expect_equal(answer.status, 200, answer)
        t.checkpoint_seq = answer.json["seq"]
        for i in range(2):
            ok("jwt", {"sub": f"after-checkpoint-{i}"})
        t.jwks = d.jwks_json()
        expect_equal(d.stop(), 0, "SIGTERM is a clean stop")

    # helpers
    def copy(self, name, lines):
        """A tampered copy in its own folder, with the audit key file beside it."""
        folder = Path(tempfile.mkdtemp(dir=self.tmp))
        path = folder / "audit.jsonl"
        write_lines(path, lines)
        shutil.copy(f"{self.file}.key.jwk", f"{path}.key.jwk")
        return path

    def index_of(self, predicate, after=0):
        return next(i for i, r in enumerate(self.records) if i >= after and predicate(r))

    def assertBroken(self, path, line, seq, why=None):
        out = audit_verify(path)
        self.assertEqual(out.returncode, 1, out)
        self.assertEqual(out.stdout, "")
        self.assertEqual(len(out.stderr.strip().splitlines()), 1, out.stderr)
        self.assertIn(f"{path}:{line}: seq {seq}:", out.stderr)
        if why:
            self.assertIn(why, out.stderr)
        return out.stderr

    def assertVerifies(self, *paths):
        out = audit_verify(*paths)
        self.assertEqual(out.returncode, 0, out)
        self.assertEqual(out.stderr, "")
        return parse_verify(out.stdout)


class ChainTest(RecordedRun):
    def test_verify_accepts_the_log_and_counts_exactly_what_was_issued(self):
        report = self.assertVerifies(self.file)
        self.assertEqual(report["lines"], len(self.lines))
        self.assertEqual(report["first_seq"], 1)
        self.assertEqual(report["uncovered"], 0, "the stop checkpoint covers everything")
        self.assertEqual(report["checkpoints"], sum(r["event"] == "checkpoint" for r in self.records))
        self.assertGreaterEqual(report["checkpoints"], 2, "the admin one and the one at stop")
        self.assertEqual(report["by_kid"], self.issued.by_kid())
        self.assertEqual(set(report["by_kid"]), {self.first_kid, self.rotated_kid}, "both keys signed")
        self.assertEqual(report["by_client"], self.issued.by_client())
        self.assertEqual(report["by_client"], {"e2e": 16, "second": 3})
        self.assertEqual(report["audit_kid"], load_audit_key(self.file)[0])

    def test_seq_is_contiguous_from_1_and_prev_is_the_sha256_of_the_line_before(self):
        self.assertEqual(self.records[0]["prev"], GENESIS)
        self.assertEqual([r["seq"] for r in self.records], list(range(1, len(self.records) + 1)))
        for i in range(1, len(self.lines)):
            self.assertEqual(self.records[i]["prev"], hashlib.sha256(self.lines[i - 1].encode()).hexdigest(), i + 1)
        self.assertIsNone(chain_errors(self.lines))
        for r in self.records:
            self.assertEqual(list(r)[:3], ["seq", "time", "event"], r)
            self.assertEqual(list(r)[-1], "prev", r)
        # My checker can fail: one changed byte breaks it.
        broken = list(self.lines)
        broken[5] = broken[5].replace('"event":', '"event": ', 1)
        self.assertIn("line 7: prev", chain_errors(broken))

    def test_the_file_is_private(self):
        self.assertEqual(os.stat(self.file).st_mode & 0o077, 0, oct(os.stat(self.file).st_mode))

    def test_the_log_begins_with_start_and_ends_with_stop_and_a_checkpoint(self):
        events = [r["event"] for r in self.records]
        self.assertEqual(events[:3], ["start", "config", "login"])
        self.assertEqual(events[-2:], ["stop", "checkpoint"])
        self.assertEqual(self.records[-1]["head"], sha256_hex(self.lines[-2]))
        self.assertEqual(events.count("start"), 1)
        self.assertEqual(events.count("stop"), 1)
        # The admin checkpoint is where the daemon said.
        self.assertEqual(self.records[self.checkpoint_seq - 1]["event"], "checkpoint")
        config = self.records[1]
        self.assertEqual(config["sha256"], b64url(hashlib.sha256(self.daemon.config_path.read_bytes()).digest()))

    def test_key_events_are_recorded(self):
        keygens = [r for r in self.records if r["event"] == "keygen"]
        self.assertEqual(sorted((r["keyset"], r["kid"]) for r in keygens),
                         sorted([("audit", load_audit_key(self.file)[0]), ("default", self.first_kid),
                                 ("default", self.rotated_kid)]))
        activated = [r["kid"] for r in self.records if r["event"] == "activate"]
        self.assertIn(self.first_kid, activated)
        self.assertIn(self.rotated_kid, activated)
        # The rotation is after the first batch and before the second: the key events sit between them.
        rotated_at = self.index_of(lambda r: r["event"] == "keygen" and r["kid"] == self.rotated_kid)
        self.assertEqual({r["kid"] for r in self.records[:rotated_at] if r["event"] in ("issue", "sign")},
                         {self.first_kid})
        self.assertEqual({r["kid"] for r in self.records[rotated_at:] if r["event"] in ("issue", "sign")},
                         {self.rotated_kid})
        admin_ops = [r for r in self.records if r["event"] == "config" and "operation" in r]
        self.assertEqual([r["operation"] for r in admin_ops], ["rotate", "checkpoint"])
        self.assertEqual(admin_ops[0]["uid"], 0)
        self.assertIsInstance(admin_ops[0]["keyset"], str)
        self.assertIsInstance(admin_ops[0]["immediate"], bool)

    def test_each_jwt_has_one_issue_line_naming_the_request_never_the_token(self):
        issues = {r["jti"]: r for r in self.records if r["event"] == "issue"}
        self.assertEqual(len(issues), sum(r["event"] == "issue" for r in self.records), "a jti appears twice")
        self.assertEqual(set(issues), {a["jti"] for _, _, a in self.issued.jwt})
        text = self.file.read_text()
        for name, body, answer in self.issued.jwt:
            r = issues[answer["jti"]]
            _, claims = verify_jwt(answer["jwt"], self.jwks, "ES256")
            self.assertEqual((r["sub"], r["aud"], r["exp"], r["kid"], r["client"]),
                             (claims["sub"], claims["aud"], claims["exp"], answer["kid"], name))
            self.assertEqual(r["uid"], SECOND_UID if name == "second" else 0)
            self.assertIsInstance(r["pid"], int)
            self.assertGreater(r["pid"], 0)
            self.assertIn("gid", r)
            self.assertNotIn(answer["jwt"], text)
            self.assertNotIn(answer["jwt"].rpartition(".")[2], text, "a signature is in the log")
            self.assertNotIn(answer["jwt"].partition(".")[2].rpartition(".")[0], text, "the payload is in the log")
        # Requests refused by policy signed nothing and left no issue line.
        subs = {r.get("sub") for r in self.records}
        for body in self.refused_bodies:
            self.assertNotIn(body["sub"], subs)

    def test_sign_lines_name_the_digest_never_the_signature(self):
        signs = [r for r in self.records if r["event"] == "sign"]
        self.assertEqual(len(signs), len(self.issued.jws) + len(self.issued.sign))
        text = self.file.read_text()
        by_digest = {r["digest"]: r for r in signs}
        for name, body, answer in self.issued.sign:
            r = by_digest[body["digest"]]
            self.assertEqual((r["operation"], r["kid"], r["client"]), ("sign", answer["kid"], name))
            self.assertNotIn(answer["signature"], text)
        for name, body, answer in self.issued.jws:
            verify_jws(answer["jws"], self.jwks, "ES256")
            signing_input = answer["jws"].rpartition(".")[0]
            r = by_digest[digest_of(signing_input)]  # the SHA-256 of what was signed
            self.assertEqual((r["operation"], r["kid"], r["client"]), ("jws", answer["kid"], name))
            self.assertNotIn(answer["jws"].rpartition(".")[2], text)
            self.assertNotIn(body["payload"], text, "the payload is in the log")
        # The jws the second client may not make: no line.
        self.assertFalse(any(r.get("client") == "second" and r.get("operation") == "jws" for r in signs))

    def test_the_denied_peer_has_a_deny_line_and_nothing_else(self):
        denies = [r for r in self.records if r["event"] == "deny"]
        self.assertEqual(len(denies), 1, denies)
        d = denies[0]
        self.assertEqual((d["uid"], d["gid"], d["target"]), (NOBODY, 0, "/v1/jwt"))
        self.assertIsInstance(d["pid"], int)
        self.assertNotIn("client", d)
        self.assertFalse([r for r in self.records if r.get("uid") == NOBODY and r["event"] != "deny"])
        # The second client's refused jws is a policy refusal, not an unknown peer: no deny line for it.
        self.assertFalse([r for r in denies if r["uid"] == SECOND_UID])

    def test_checkpoints_verify_independently_with_the_published_key(self):
        kid, public_key = load_audit_key(self.file)
        checkpoints = [(i, r) for i, r in enumerate(self.records) if r["event"] == "checkpoint"]
        self.assertGreaterEqual(len(checkpoints), 2)
        for i, r in checkpoints:
            self.assertEqual((r["kid"], r["alg"]), (kid, "ES256"))
            self.assertEqual(r["head"], r["prev"])
            self.assertEqual(r["head"], sha256_hex(self.lines[i - 1]))
            self.assertTrue(checkpoint_verifies(public_key, r), r)
            # Negative: the same signature does not verify for another position, time or head.
            for changed in ({"seq": r["seq"] + 1}, {"time": "2000-01-01T00:00:00.000000Z"},
                            {"head": sha256_hex(self.lines[i - 2])}):
                self.assertFalse(checkpoint_verifies(public_key, {**r, **changed}), changed)
        # Nor with another P-256 key.
        other = ec.generate_private_key(ec.SECP256R1()).public_key()
        self.assertFalse(checkpoint_verifies(other, checkpoints[0][1]))


class TamperTest(RecordedRun):
    """Each attack on a copy; verify exits 1 and names the first line that breaks, as FILE:LINE: seq N."""

    def issue_line(self, nth=2):
        """The index of the nth issue line before the admin checkpoint (well inside the log)."""
        found = [i for i, r in enumerate(self.records[: self.checkpoint_seq - 1]) if r["event"] == "issue"]
        return found[nth]

    def test_the_untouched_copy_verifies(self):
        self.assertVerifies(self.copy("same", self.lines))

    def test_an_edited_field_names_its_line(self):
        k = self.issue_line()
        lines = list(self.lines)
        lines[k] = re.sub(r'"sub":"[^"]*"', '"sub":"mallory"', lines[k])
        self.assertNotEqual(lines[k], self.lines[k])
        self.assertBroken(self.copy("edit", lines), k + 1, k + 1, "changed")

    def test_a_changed_checkpoint_signature_names_the_checkpoint(self):
        lines = list(self.lines)
        # Its prev and head still fit: only the signature can tell, and it does.
        lines[-1] = re.sub(r'"signature":"([^"]*)"', lambda m: '"signature":"' + flip(m[1], 5) + '"', lines[-1])
        self.assertNotEqual(lines[-1], self.lines[-1])
        n = len(lines)
        self.assertBroken(self.copy("sig", lines), n, n, "signature does not verify")

    def test_a_deleted_line_names_the_line_after_the_gap(self):
        k = self.issue_line()
        lines = self.lines[:k] + self.lines[k + 1:]
        # The line now at position k+1 is the one that was k+2 (seq k+2): it follows seq k.
        stderr = self.assertBroken(self.copy("delete", lines), k + 1, k + 2, "missing")
        self.assertIn(f"follows seq {k}", stderr)

    def test_an_inserted_copy_of_a_line_is_named(self):
        k = self.issue_line()
        lines = self.lines[: k + 1] + [self.lines[3]] + self.lines[k + 1:]
        self.assertBroken(self.copy("insert", lines), k + 2, 4, "inserted")

    def test_a_duplicated_line_is_named(self):
        k = self.issue_line()
        lines = self.lines[: k + 1] + [self.lines[k]] + self.lines[k + 1:]
        self.assertBroken(self.copy("dup", lines), k + 2, k + 1)

    def test_two_swapped_lines_are_named(self):
        k = self.issue_line()
        lines = list(self.lines)
        lines[k], lines[k + 1] = lines[k + 1], lines[k]
        self.assertBroken(self.copy("swap", lines), k + 1, k + 2, "moved")

    def test_a_rechained_edit_fails_at_the_next_checkpoint(self):
        k = self.issue_line()
        lines = rechain(self.lines, k, lambda line: re.sub(r'"sub":"[^"]*"', '"sub":"mallory"', line))
        # The chain itself is consistent again: my checker and the seq/prev rules see nothing.
        self.assertIsNone(chain_errors(lines))
        c = self.checkpoint_seq  # the first checkpoint after line k+1
        self.assertTrue(all(r["event"] != "checkpoint" for r in self.records[k:c - 1]))
        self.assertBroken(self.copy("rechain", lines), c, c, "signature does not verify")
        # Re-chaining without an edit changes nothing and verifies: the failure above is the edit.
        self.assertEqual(rechain(self.lines, k, lambda line: line), self.lines)
        self.assertVerifies(self.copy("rechain-nothing", rechain(self.lines, k, lambda line: line)))

    def test_a_rechained_edit_after_the_last_admin_checkpoint_fails_at_the_stop_checkpoint(self):
        k = self.index_of(lambda r: r["event"] == "issue", after=self.checkpoint_seq)
        lines = rechain(self.lines, k, lambda line: re.sub(r'"sub":"[^"]*"', '"sub":"mallory"', line))
        self.assertBroken(self.copy("rechain-late", lines), len(lines), len(lines), "signature does not verify")

    def test_a_first_line_with_another_prev_is_refused(self):
        lines = rechain(self.lines, 0, lambda line: line.replace(GENESIS, "1" * 64))
        self.assertBroken(self.copy("genesis", lines), 1, 1, "64 zeros")

    def test_a_line_that_is_not_json_is_named(self):
        k = self.issue_line()
        lines = list(self.lines)
        lines[k] = lines[k][:-10]
        out = audit_verify(path := self.copy("torn", lines))
        self.assertEqual(out.returncode, 1, out)
        self.assertIn(f"{path}:{k + 1}:", out.stderr)

    def test_truncation_right_after_a_checkpoint_still_verifies(self):
        # A known limit of any hash chain: the end of the log is only as recent as its last checkpoint.
        c = self.checkpoint_seq
        report = self.assertVerifies(self.copy("cut", self.lines[:c]))
        self.assertEqual((report["lines"], report["uncovered"]), (c, 0))
        self.assertLess(report["lines"], len(self.lines))
        # Cut anywhere else, the lines after the last checkpoint show as uncovered.
        report = self.assertVerifies(self.copy("cut-later", self.lines[: c + 2]))
        self.assertEqual(report["uncovered"], 2)
        report = self.assertVerifies(self.copy("no-stop-checkpoint", self.lines[:-1]))
        self.assertEqual(report["uncovered"], len(self.lines) - 1 - c, "the lines from the admin checkpoint to stop")

    def test_a_forged_line_after_the_last_checkpoint_is_reported_uncovered(self):
        c = self.checkpoint_seq
        forged = json.dumps({"seq": c + 1, "time": self.records[c - 1]["time"], "event": "issue", "uid": 0,
                             "client": "e2e", "kid": self.rotated_kid, "jti": "forged", "sub": "mallory",
                             "prev": sha256_hex(self.lines[c - 1])}, separators=(",", ":"))
        report = self.assertVerifies(path := self.copy("forged", self.lines[:c] + [forged]))
        self.assertEqual(report["uncovered"], 1)
        out = audit_verify(path)
        self.assertIn("1 lines after the last checkpoint", out.stdout)
        # The same forged line with a wrong prev is refused at the join.
        wrong = forged.replace(sha256_hex(self.lines[c - 1]), sha256_hex(self.lines[c - 2]))
        out = audit_verify(path := self.copy("forged-wrong-prev", self.lines[:c] + [wrong]))
        self.assertEqual(out.returncode, 1, out)
        self.assertRegex(out.stderr, rf"{re.escape(str(path))}:({c}: seq {c}|{c + 1}: seq {c + 1}):")

    def test_a_checkpoint_by_another_key_is_refused(self):
        other = Path(tempfile.mkdtemp(dir=self.tmp)) / "other.jwk"
        key = jwk.JWK.generate(kty="EC", crv="P-256")
        other.write_text(json.dumps({**json.loads(key.export_public()), "kid": key.thumbprint()}))
        out = audit_verify(self.file, key=other)
        self.assertEqual(out.returncode, 1, out)
        first = next(r["seq"] for r in self.records if r["event"] == "checkpoint")
        self.assertIn(f"{self.file}:{first}: seq {first}:", out.stderr)
        self.assertEqual(audit_verify(self.file, key=f"{self.file}.key.jwk").returncode, 0)


def flip(text, index):
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1:]


def rechain(lines, k, edit):
    """The attack: edit line k, then recompute every later prev (and checkpoint head) so the chain holds."""
    out = list(lines)
    out[k] = edit(out[k])
    for i in range(k + 1, len(out)):
        r = json.loads(out[i])
        r["prev"] = sha256_hex(out[i - 1])
        if r["event"] == "checkpoint":
            r["head"] = r["prev"]
        out[i] = json.dumps(r, separators=(",", ":"), ensure_ascii=False)
    return out


# --- rotation -------------------------------------------------------------------------------------------

class RotationTest(unittest.TestCase):
    def start(self, **audit):
        daemon = Daemon()
        self.addCleanup(daemon.cleanup)
        daemon.config["audit"].update(audit)
        return daemon.start()

    def assertSequence(self, files, issued_jtis):
        """The files, oldest first, are one chain: verify accepts them together; each file after the first
        begins where the one before it ended."""
        out = audit_verify(*files)
        self.assertEqual(out.returncode, 0, out)
        report = parse_verify(out.stdout)
        all_lines = [line for f in files for line in read_lines(f)]
        self.assertEqual((report["lines"], report["first_seq"], report["uncovered"]), (len(all_lines), 1, 0))
        self.assertIsNone(chain_errors(all_lines))
        for older, newer in zip(files, files[1:]):
            last, first = read_lines(older)[-1], read_lines(newer)[0]
            self.assertEqual(json.loads(first)["prev"], sha256_hex(last), newer)
            self.assertEqual(json.loads(first)["seq"], json.loads(last)["seq"] + 1, newer)
            self.assertEqual(older.name.rpartition(".")[2], str(json.loads(read_lines(older)[0])["seq"]),
                             "a rotated file is named after its first seq")
        self.assertEqual({json.loads(line).get("jti") for line in all_lines} - {None}, set(issued_jtis))
        self.assertEqual(sum(report["by_kid"].values()), len(issued_jtis))
        return report

    def test_sighup_rotates_and_the_files_verify_together_oldest_first(self):
        d = self.start()
        jtis = [d.jwt(sub="batch-1")["jti"] for _ in range(3)]
        first = sighup_and_wait(d)
        self.assertEqual(first.name, "audit.jsonl.1")
        self.assertEqual(log_file(d).stat().st_size, 0, "nothing written yet to the new file")
        jtis += [d.jwt(sub="batch-2")["jti"] for _ in range(3)]
        second = sighup_and_wait(d)
        jtis += [d.jwt(sub="batch-3")["jti"] for _ in range(2)]
        self.assertEqual(d.stop(), 0)
        files = rotated_files(log_file(d)) + [log_file(d)]
        self.assertEqual(files[:2], [first, second])
        self.assertEqual(len(files), 3)
        # The batches landed in their own files.
        self.assertEqual({r.get("sub") for r in records(second)} - {None}, {"batch-2"})
        self.assertEqual({r.get("sub") for r in records(log_file(d))} - {None}, {"batch-3"})
        self.assertSequence(files, jtis)
        for f in files:
            self.assertEqual(os.stat(f).st_mode & 0o077, 0, f)
        # The newest alone verifies, but says where it starts.
        out = audit_verify(log_file(d))
        self.assertEqual(out.returncode, 0, out)
        newest = parse_verify(out.stdout)
        self.assertEqual(newest["first_seq"], records(log_file(d))[0]["seq"])
        self.assertGreater(newest["first_seq"], 1)
        self.assertIn(f"starts at seq {newest['first_seq']}", out.stdout)
        # The full log verified alone has no such note.
        self.assertNotIn("starts at seq", audit_verify(*files).stdout)
        # Out of order, or with the middle file missing: refused, naming the first file's line 1 of the break.
        out = audit_verify(files[1], files[0], files[2])
        self.assertEqual(out.returncode, 1, out)
        self.assertIn(f"{files[0]}:1: seq 1:", out.stderr)
        out = audit_verify(files[0], files[2])
        self.assertEqual(out.returncode, 1, out)
        self.assertIn(f"{files[2]}:1: seq {records(files[2])[0]['seq']}:", out.stderr)
        self.assertIn("missing", out.stderr)

    def test_max_size_rotates_by_itself(self):
        max_size = 1500
        d = self.start(max_size=max_size)
        jtis = [d.jwt(sub=f"user-{i}")["jti"] for i in range(14)]
        self.assertEqual(d.stop(), 0)
        rotated = rotated_files(log_file(d))
        self.assertGreaterEqual(len(rotated), 2, [p.name for p in rotated])
        for n, f in enumerate(rotated):
            size = f.stat().st_size
            self.assertGreaterEqual(size, max_size, f)
            # Rotated as soon as it reached max_size: without its last line (one request, one line: the
            # first file also holds the start-up batch) it was below it.
            if n > 0:
                self.assertLess(size - len(read_lines(f)[-1]) - 1, max_size, f)
        files = rotated + ([log_file(d)] if log_file(d).stat().st_size else [])
        self.assertSequence(files, jtis)

    def test_without_max_size_nothing_rotates(self):
        d = self.start()
        for i in range(14):
            d.jwt(sub=f"user-{i}")
        self.assertEqual(d.stop(), 0)
        self.assertEqual(rotated_files(log_file(d)), [])
        self.assertGreater(log_file(d).stat().st_size, 1500)


# --- restarts -------------------------------------------------------------------------------------------

class HostileBytesTest(FreshDaemonTestCase):
    def test_a_denied_peers_bytes_that_are_not_utf8_keep_the_log_json_and_verifiable(self):
        # The deny line quotes the request target, which any local user can fill with any bytes.
        d = self.daemon
        target = b"/v1/jwt\xff\xfe\xc3"
        answer = raw_as_uid(NOBODY, d.socket_path,
                            b"POST " + target + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        self.assertTrue(answer.startswith(b"HTTP/1.1 403 "), answer)
        d.jwt(sub="after")
        lines = read_lines(log_file(d))  # strict UTF-8
        denies = [json.loads(line) for line in lines if '"event":"deny"' in line]
        # Each ill-formed sequence is one U+FFFD, as Python's own decoder has it.
        self.assertEqual([r["target"] for r in denies], [target.decode("utf-8", "replace")])
        out = audit_verify(log_file(d))
        self.assertEqual(out.returncode, 0, out)


class CheckpointSeqTest(FreshDaemonTestCase):
    def test_the_seq_a_checkpoint_answers_is_its_own_line_under_load(self):
        # Group commit writes a checkpoint in one batch with the lines queued beside it: the answer must
        # name the checkpoint's line, not the batch's last.
        d, stop = self.daemon, threading.Event()

        def issue():
            conn = d.connection()
            try:
                while not stop.is_set():
                    conn.call("POST", "/v1/jwt", {"sub": "load"})
            finally:
                conn.close()

        issuers = [threading.Thread(target=issue, daemon=True) for _ in range(6)]
        for t in issuers:
            t.start()
        try:
            answered = []
            for _ in range(40):
                answer = admin(d, "POST", "/v1/admin/checkpoint", {})
                self.assertEqual(answer.status, 200, answer)
                answered.append(answer.json["seq"])
        finally:
            stop.set()
            for t in issuers:
                t.join(timeout=10)
        lines = records(log_file(d))
        events = [lines[seq - 1]["event"] for seq in answered]
        self.assertEqual(events, ["checkpoint"] * len(answered), answered)
        self.assertEqual([lines[seq - 1]["seq"] for seq in answered], answered)


class RestartTest(FreshDaemonTestCase):
    def test_after_kill_9_the_chain_continues(self):
        d = self.daemon
        jtis = [d.jwt(sub="before-crash")["jti"] for _ in range(3)]
        d.kill()
        before = read_lines(log_file(d))
        # Every answered token is already on disk (a request is answered only once its line is durable).
        self.assertEqual({json.loads(line).get("jti") for line in before} >= set(jtis), True)
        self.assertNotIn('"event":"stop"', before[-1])
        d.start()
        jtis += [d.jwt(sub="after-crash")["jti"] for _ in range(2)]
        self.assertEqual(d.stop(), 0)
        lines = read_lines(log_file(d))
        self.assertEqual(lines[: len(before)], before, "the lines before the crash are unchanged")
        restart = json.loads(lines[len(before)])
        self.assertEqual((restart["event"], restart["seq"], restart["prev"]),
                         ("start", json.loads(before[-1])["seq"] + 1, sha256_hex(before[-1])))
        self.assertIsNone(chain_errors(lines))
        out = audit_verify(log_file(d))
        self.assertEqual(out.returncode, 0, out)
        report = parse_verify(out.stdout)
        self.assertEqual((report["lines"], report["uncovered"]), (len(lines), 0))
        self.assertEqual(sum(report["by_kid"].values()), 5)
        self.assertEqual({json.loads(line).get("jti") for line in lines} - {None}, set(jtis))
        # Negative: the log as the crash left it verifies too, but its tail is not covered by a checkpoint.
        crash_copy = log_file(d).parent / "crash-copy.jsonl"
        write_lines(crash_copy, before)
        out = audit_verify(crash_copy, key=f"{log_file(d)}.key.jwk")
        self.assertEqual(out.returncode, 0, out)
        self.assertGreater(parse_verify(out.stdout)["uncovered"], 0)

    def test_a_torn_last_line_is_cut_off_at_start(self):
        d = self.daemon
        d.jwt(sub="before")
        self.assertEqual(d.stop(), 0)
        good = log_file(d).read_bytes()
        with open(log_file(d), "ab") as f:
            f.write(b'{"seq":9999,"time":"2030-01-01T00:00:00.000000Z","event":"iss')
        # Negative: as it is, the torn file does not verify.
        out = audit_verify(log_file(d))
        self.assertEqual(out.returncode, 1, out)
        d.start()
        d.jwt(sub="after")
        self.assertEqual(d.stop(), 0)
        data = log_file(d).read_bytes()
        self.assertTrue(data.startswith(good))
        self.assertNotIn(b'"seq":9999', data)
        out = audit_verify(log_file(d))
        self.assertEqual(out.returncode, 0, out)
        self.assertIsNone(chain_errors(read_lines(log_file(d))))

    def test_a_crash_right_after_rotation_continues_the_chain_in_the_new_file(self):
        d = self.daemon
        d.jwt(sub="before")
        rotated = sighup_and_wait(d)
        d.kill()
        self.assertEqual(log_file(d).stat().st_size, 0)
        d.start()
        d.jwt(sub="after")
        self.assertEqual(d.stop(), 0)
        last, first = read_lines(rotated)[-1], read_lines(log_file(d))[0]
        self.assertEqual(json.loads(first)["event"], "start")
        self.assertEqual(json.loads(first)["seq"], json.loads(last)["seq"] + 1)
        self.assertEqual(json.loads(first)["prev"], sha256_hex(last))
        out = audit_verify(rotated, log_file(d))
        self.assertEqual(out.returncode, 0, out)
        self.assertEqual(parse_verify(out.stdout)["uncovered"], 0)


# --- a log that cannot be written ---------------------------------------------------------------------------

def prlimit_fsize(pid, value):
    """Sets the soft limit only ("N:"): lowering the hard limit could not be undone without CAP_SYS_RESOURCE,
    which a container's root may lack; the soft limit is what write() obeys."""
    out = subprocess.run(["prlimit", "--pid", str(pid), f"--fsize={value}:"], capture_output=True, text=True,
                         timeout=10)
    assert out.returncode == 0, out.stderr


class DurabilityTest(FreshDaemonTestCase):
    """RLIMIT_FSIZE just above the log's size: every write fails with EFBIG (the daemon ignores SIGXFSZ)."""

    def setUp(self):
        super().setUp()
        self.addCleanup(lambda: self.daemon.process and prlimit_fsize(self.daemon.process.pid, "unlimited"))

    def fill_up(self):
        d = self.daemon
        self.size = log_file(d).stat().st_size
        prlimit_fsize(d.process.pid, self.size + 64)  # less than any line

    def test_requests_are_refused_while_the_log_cannot_be_written_and_served_after(self):
        d = self.daemon
        ok = [d.jwt(sub="before")["jti"] for _ in range(2)]
        self.fill_up()
        refused = [d.post("/v1/jwt", {"sub": f"refused-{i}"}) for i in range(3)]
        refused.append(d.post("/v1/jws", {"payload": b64url(b"refused payload")}))
        refused.append(d.post("/v1/sign", {"digest": digest_of("refused message")}))
        for answer in refused:
            self.assertEqual(answer.status, 503, answer)
            self.assertEqual(answer.json["error"], "unavailable", answer)
            self.assertNotIn("jwt", answer.json)
            self.assertNotIn("signature", answer.json)
            self.assertNotIn("jws", answer.json)
        for health in (d.get("/healthz"), d.public("GET", "/healthz")):
            self.assertEqual(health.status, 503, health)
            self.assertEqual(health.json["status"], "unavailable")
            self.assertIn("audit log", health.json["reason"])
        self.assertEqual(admin(d, "POST", "/v1/admin/checkpoint", {}).status, 503)
        self.assertEqual(log_file(d).stat().st_size, self.size, "a failed batch left bytes behind")
        # A fact (a peer was denied) is kept and written once the disk is back.
        denied = as_uid(NOBODY, d.socket_path, [["POST", "/v1/jwt", {"sub": "nobody"}]])[0]
        self.assertEqual(denied["status"], 403)

        prlimit_fsize(d.process.pid, "unlimited")
        answer = d.post("/v1/jwt", {"sub": "after"})
        self.assertEqual(answer.status, 200, answer)
        ok.append(answer.json["jti"])
        self.assertEqual(d.get("/healthz").status, 200)
        ok.append(d.jwt(sub="after")["jti"])
        self.assertEqual(d.stop(), 0)

        lines = read_lines(log_file(d))
        self.assertIsNone(chain_errors(lines), "a gap in seq or prev")
        out = audit_verify(log_file(d))
        self.assertEqual(out.returncode, 0, out)
        self.assertEqual(parse_verify(out.stdout)["uncovered"], 0)
        recs = [json.loads(line) for line in lines]
        # Every 200 answer has its line; the 503 answers have none.
        self.assertEqual(sorted(r["jti"] for r in recs if r["event"] == "issue"), sorted(ok))
        self.assertEqual([r for r in recs if r["event"] == "sign"], [])
        self.assertFalse([r for r in recs if str(r.get("sub", "")).startswith("refused")])
        self.assertEqual(sum(parse_verify(out.stdout)["by_kid"].values()), len(ok))
        denies = [r for r in recs if r["event"] == "deny"]
        self.assertEqual([(r["uid"], r["target"]) for r in denies], [(NOBODY, "/v1/jwt")], "the fact was lost")
        # The outage itself is on the record, once, after the last line written before it.
        errors = [r for r in recs if r["event"] == "error"]
        self.assertEqual(len(errors), 1, errors)
        self.assertIn("audit log", errors[0]["reason"])
        self.assertGreater(errors[0]["seq"], max(r["seq"] for r in recs if r.get("sub") == "before"))

    def test_healthz_recovers_once_the_log_can_be_written_again(self):
        # A load balancer that follows /healthz sends no traffic to an unavailable daemon: it must come back
        # by itself when the disk does, not only after a request it will never get.
        d = self.daemon
        d.jwt(sub="before")
        self.fill_up()
        self.assertEqual(d.post("/v1/jwt", {"sub": "refused"}).status, 503)
        self.assertEqual(d.get("/healthz").status, 503)
        prlimit_fsize(d.process.pid, "unlimited")
        deadline = time.monotonic() + 5
        while d.get("/healthz").status != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        health = d.get("/healthz")
        self.assertEqual(health.status, 200, f"/healthz with the audit log writable again for 5 s: {health}")

    def test_sigterm_while_the_log_cannot_be_written_still_stops_the_daemon(self):
        # The stop and checkpoint lines cannot be written; the daemon must not hang on them forever (systemd
        # would SIGKILL it after TimeoutStopSec): it exits, non-zero, saying why. The chain is intact after.
        d = self.daemon
        d.jwt(sub="before")
        self.fill_up()
        process = d.process
        process.send_signal(signal.SIGTERM)
        try:
            status = process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            prlimit_fsize(process.pid, "unlimited")
            self.fail("SIGTERM with an unwritable audit log: still running after 15 s")
        finally:
            d.process = None if process.poll() is not None else process
        self.assertNotEqual(status, 0, "the stop was not recorded, yet the exit status says success")
        self.assertIn("audit", d.stderr)
        self.assertEqual(log_file(d).stat().st_size, self.size)
        d.start()
        d.jwt(sub="after")
        self.assertEqual(d.stop(), 0)
        out = audit_verify(log_file(d))
        self.assertEqual(out.returncode, 0, out)

    def test_a_daemon_that_can_write_its_log_is_healthy(self):
        # The positive beside the negatives above: the same daemon, no limit.
        d = self.daemon
        d.jwt(sub="x")
        self.assertEqual(d.get("/healthz").json, {"status": "ok"})
        self.assertGreater(log_file(d).stat().st_size, 0)


if __name__ == "__main__":
    unittest.main()
