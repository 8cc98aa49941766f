"""A token that fails, lies or disappears: the daemon runs on the fault-injecting PKCS#11 shim
(tests/fault/), which forwards to SoftHSM and fails on command. It must answer 503 quickly while the token
fails, never hand out a bad signature, recover on its own, lose no audit line and never crash."""
import json
import os
import re
import time
import unittest
from pathlib import Path

from harness import Daemon, decode_segment, verify_jwt

SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"


def shim_path():
    path = os.environ.get("HSMSIGND_FAULT_SHIM")
    assert path and Path(path).exists(), "HSMSIGND_FAULT_SHIM (set by CTest) names the fault shim"
    return path


class FaultyToken:
    """The shim's control file: write directives, clear them."""

    def __init__(self, daemon):
        self.path = daemon.workdir / "faults.ctl"
        daemon.token_env.update(HSMSIGND_FAULT_MODULE=SOFTHSM, HSMSIGND_FAULT_CONTROL=str(self.path))
        daemon.config["token"]["module"] = shim_path()

    def set(self, *directives):
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(d + "\n" for d in directives))
        os.replace(tmp, self.path)

    def clear(self):
        self.set()


def metric(daemon, name):
    text = daemon.get("/metrics").body.decode()
    match = re.search(rf"(?m)^{re.escape(name)} (\d+)$", text)
    assert match, f"{name} not in /metrics"
    return int(match.group(1))


class FaultTestCase(unittest.TestCase):
    ALGORITHM = "ES256"
    # The shim counts COUNT per process: with one signer process, "corrupt C_Sign 5" is 5 corruptions.
    TOKEN = {"signers": 1}

    def setUp(self):
        self.daemon = Daemon(keysets=(("default", self.ALGORITHM),), token=self.TOKEN)
        self.addCleanup(self.daemon.cleanup)
        self.faults = FaultyToken(self.daemon)
        self.faults.clear()
        self.daemon.start()

    def tearDown(self):
        # Whatever happened, the process is alive, stops cleanly, and its audit log verifies whole.
        self.assertIsNone(self.daemon.process.poll(), self.daemon.stderr)
        self.faults.clear()
        self.assertEqual(self.daemon.stop(), 0, self.daemon.stderr)
        out = self.daemon.ctl("audit", "verify", str(self.daemon.workdir / "log" / "audit.jsonl"))
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def issue(self):
        started = time.monotonic()
        answer = self.daemon.post("/v1/jwt", {"sub": "u"})
        return answer, time.monotonic() - started

    def assertValid(self, answer):
        self.assertEqual(answer.status, 200, answer)
        verify_jwt(answer.json["jwt"], self.daemon.jwks_json(), self.ALGORITHM)

    def wait_until(self, condition, timeout, what=""):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return time.monotonic()
            time.sleep(0.01)
        self.fail(f"not within {timeout} s: {what}")

    def issued_lines(self):
        lines = (self.daemon.workdir / "log" / "audit.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]


class CorruptSignatureTest(FaultTestCase):
    def test_a_corrupted_signature_never_leaves(self):
        self.assertValid(self.issue()[0])
        self.faults.set("corrupt C_Sign 5")
        answers = [self.issue()[0] for _ in range(20)]
        refused = [a for a in answers if a.status != 200]
        self.assertEqual(len(refused), 5, answers)
        for a in refused:
            self.assertEqual(a.status, 503, a)
            self.assertEqual(a.json["error"], "unavailable", a)
        for a in answers:
            if a.status == 200:
                self.assertValid(a)
        self.assertEqual(metric(self.daemon, "hsmsignd_signature_faults_total"), 5)
        self.assertIn("signature_fault", self.daemon.stderr)
        # Only signatures that left are recorded as issued; every issued jti is in the audit log.
        issued = {decode_segment(a.json["jwt"].split(".")[1])["jti"] for a in answers if a.status == 200}
        logged = {line.get("jti") for line in self.issued_lines() if line["event"] == "issue"}
        self.assertTrue(issued <= logged, issued - logged)


class CorruptRsaSignatureSampledTest(FaultTestCase):
    # "sampled" checks EC one in 32, but RSA always: a faulty RSA-CRT signature gives the key away.
    ALGORITHM = "RS256"
    TOKEN = {"signers": 1, "verify_signatures": "sampled"}

    def test_rsa_is_checked_even_when_sampled(self):
        self.faults.set("corrupt C_Sign 3")
        answers = [self.issue()[0] for _ in range(8)]
        self.assertEqual(sum(a.status == 503 for a in answers), 3, answers)
        for a in answers:
            if a.status == 200:
                self.assertValid(a)
        self.assertEqual(metric(self.daemon, "hsmsignd_signature_faults_total"), 3)


class DeviceErrorTest(FaultTestCase):
    def test_answers_503_quickly_reports_it_and_recovers(self):
        self.assertValid(self.issue()[0])
        self.faults.set("fail C_Sign CKR_DEVICE_ERROR")
        slowest = 0.0
        for _ in range(20):
            answer, took = self.issue()
            self.assertEqual(answer.status, 503, answer)
            self.assertIn("CKR_DEVICE_ERROR", answer.json["message"])
            slowest = max(slowest, took)
        self.assertLess(slowest, 0.5, "a failing token must be answered quickly")
        health = self.daemon.get("/healthz")
        self.assertEqual(health.status, 503, health)
        self.assertEqual(health.json["status"], "unavailable")
        self.assertIn("CKR_DEVICE_ERROR", health.json["reason"])
        self.assertEqual(metric(self.daemon, "hsmsignd_token_available"), 0)
        # /healthz and the JWKS never touch the token: they answer throughout.
        self.assertEqual(self.daemon.public("GET", "/.well-known/jwks.json").status, 200)

        self.faults.clear()
        cleared = time.monotonic()
        self.wait_until(lambda: self.issue()[0].status == 200, 10)
        recovery = time.monotonic() - cleared
        print(f"\n  device error: first token {recovery * 1000:.0f} ms after the fault cleared", flush=True)
        self.assertEqual(self.daemon.get("/healthz").status, 200)
        self.assertEqual(metric(self.daemon, "hsmsignd_token_available"), 1)
        self.assertValid(self.issue()[0])
        # One error line when the token started failing, not one per request.
        self.assertEqual(self.daemon.stderr.count("token_unavailable"), 1, self.daemon.stderr)
        # (The keyring's periodic re-read may add an error line of its own if it meets the outage.)
        errors = [line for line in self.issued_lines() if line["event"] == "error" and "kid" in line]
        self.assertEqual(len(errors), 1, errors)


class SessionLostTest(FaultTestCase):
    def test_a_dropped_session_is_replaced_without_failing_the_request(self):
        # The session is closed, invalid, or no longer logged in: a fresh, logged-in session takes over
        # and the request never notices. (A new control file restarts the shim's count.)
        for rv in ("CKR_SESSION_HANDLE_INVALID", "CKR_SESSION_CLOSED", "CKR_USER_NOT_LOGGED_IN"):
            with self.subTest(rv=rv):
                self.faults.set(f"fail C_Sign {rv} 1")
                self.assertValid(self.issue()[0])
        self.assertNotIn("token_unavailable", self.daemon.stderr)


class RemovedTokenTest(FaultTestCase):
    def test_a_removed_token_comes_back_after_reinitialisation(self):
        self.assertValid(self.issue()[0])
        self.faults.set("removed")
        for _ in range(10):
            answer, took = self.issue()
            self.assertEqual(answer.status, 503, answer)
            self.assertLess(took, 0.5)
        self.assertEqual(self.daemon.get("/healthz").status, 503)
        time.sleep(1.0)  # several probes fail meanwhile: the watch keeps trying, nothing crashes
        self.assertEqual(self.issue()[0].status, 503)

        self.faults.clear()
        cleared = time.monotonic()
        # No request needed: the watch re-initialises the module and /healthz turns ok by itself.
        healthy = self.wait_until(lambda: self.daemon.get("/healthz").status == 200, 10, self.daemon.stderr)
        print(f"\n  removal: /healthz ok {(healthy - cleared) * 1000:.0f} ms after the token came back", flush=True)
        first = self.issue()
        self.assertValid(first[0])
        print(f"  removal: first token after recovery took {first[1] * 1000:.1f} ms", flush=True)
        self.assertGreaterEqual(metric(self.daemon, 'hsmsignd_token_recoveries_total{outcome="recovered"}'), 1)
        self.assertIn("token_recovered", self.daemon.stderr)
        logins = [line for line in self.issued_lines() if line["event"] == "login" and line.get("recovered")]
        self.assertEqual(len(logins), 1, logins)
        self.assertIs(logins[0]["recovered"], True)
        self.assertIsInstance(logins[0]["outage_ms"], int)
        # The rotation machinery works on the re-initialised module too.
        out = self.daemon.ctl("rotate", "default")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)


class SlowTokenTest(FaultTestCase):
    def test_a_slow_token_delays_signing_but_nothing_else(self):
        self.faults.set("latency 300 C_Sign")
        answer, took = self.issue()
        self.assertValid(answer)
        self.assertGreaterEqual(took, 0.3)
        # Health, metrics and the JWKS don't wait for the token.
        started = time.monotonic()
        for path in ("/healthz", "/metrics", "/v1/keys"):
            self.assertEqual(self.daemon.get(path).status, 200)
        self.assertLess(time.monotonic() - started, 0.25)


if __name__ == "__main__":
    unittest.main()
