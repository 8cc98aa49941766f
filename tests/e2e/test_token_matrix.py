"""The suite that matters, on four PKCS#11 implementations (issue 17): SoftHSM2, NSS softoken, a TPM 2.0
(swtpm + tpm2-abrmd + tpm2-pkcs11) and p11-kit remote (p11-kit server in front of SoftHSM). Each class runs
one daemon on a throw-away token made by tokens.py in its own temp folder, with every helper process
started by the test and stopped by pid in cleanup, even on failure.

For each token: a JWT per algorithm the token supports, verified with jwcrypto against the JWKS; a rotation
with pre-publication (the new key is in the JWKS before it signs); the custody report (every signing key
local, or on NSS local not reported with the keygen evidence, never extractable, always sensitive); an
audit checkpoint signed by the token, checked by `hsmsignctl audit verify` and independently; kill -9 during
a rotation, then exactly one active key per keyset and issuance works; an unsupported algorithm refused at
start naming the keyset and the mechanism; libp11 (tests/tokens/libp11_probe.c) as a second client that
finds the daemon's keys and cannot extract them.

HSMSIGND_MATRIX=softhsm,p11kit runs only those kinds' classes (the others are skipped, saying so);
unset, all four run.
"""
import json
import os
from concurrent.futures import ThreadPoolExecutor
import subprocess
import time
import unittest
from pathlib import Path

from harness import (Daemon, DaemonError, client, hsmsignctl_bin, hsmsignd_bin, render_toml, stop_process,
                     verify_jwt)
from test_audit import audit_verify, checkpoint_verifies, load_audit_key, log_file, parse_verify, records
from tokens import NSSToken, P11KitRemoteToken, SoftHSMToken, TPMToken

SELECTED = {k.strip() for k in os.environ.get("HSMSIGND_MATRIX", "").split(",") if k.strip()}
SLOW_SCHEDULE = {"rotation_period": "1h", "prepublish": "10m", "retire_after": "30m", "destroy_retired": True}
# The rotated keyset: a rotation pre-publishes its new key for 2s, then the key signs (prepublish must be at
# least jwks.max_age, retire_after at least max_ttl + jwks.max_age).
FAST_PREPUBLISH = 2.0
ROTATED_SCHEDULE = {"rotation_period": "1h", "prepublish": f"{FAST_PREPUBLISH:.0f}s", "retire_after": "2m",
                    "destroy_retired": True}
CLIENT_TTLS = {"max_ttl": "1m", "default_ttl": "30s"}
JWKS = {"max_age": "1s"}
REFUSAL_TIMEOUT = 20.0


def libp11_probe_bin():
    """$HSMSIGND_LIBP11_PROBE, else the one built beside $HSMSIGND_BIN (BUILD/tests/tokens/libp11_probe)."""
    path = os.environ.get("HSMSIGND_LIBP11_PROBE") or str(
        Path(hsmsignd_bin()).resolve().parent.parent / "tests" / "tokens" / "libp11_probe")
    if not os.access(path, os.X_OK):
        raise AssertionError(f"HSMSIGND_LIBP11_PROBE: {path} is not the libp11 probe; build it first "
                             f"(target libp11_probe)")
    return path


def keyset_name(alg):
    return alg.lower()


class TokenMatrix:
    """Mixed into one unittest.TestCase per token kind; TOKEN is a tokens.py factory class.

    The tests are numbered: they share one daemon, and the kill -9 and the refusal come after the reads."""

    TOKEN = None
    ALGORITHMS = None        # default: TOKEN.algorithms
    ROTATED = "es256"        # the keyset rotated and crashed (EC: key generation is quick on every token)

    @classmethod
    def setUpClass(cls):
        if SELECTED and cls.TOKEN.kind not in SELECTED:
            raise unittest.SkipTest(f"HSMSIGND_MATRIX={','.join(sorted(SELECTED))} leaves out {cls.TOKEN.kind}")
        cls.started = time.monotonic()
        cls.timings = {}
        algorithms = cls.ALGORITHMS or cls.TOKEN.algorithms
        cls.keysets = {keyset_name(a): a for a in algorithms}
        tables = []
        for name, alg in cls.keysets.items():
            table = {"name": name, "algorithm": alg, **(ROTATED_SCHEDULE if name == cls.ROTATED else SLOW_SCHEDULE)}
            if alg in ("RS256", "PS256"):
                table["rsa_bits"] = cls.TOKEN.rsa_bits
            tables.append(table)
        t = time.monotonic()
        cls.daemon = Daemon(keysets=tables, clients=[client(keysets=list(cls.keysets), **CLIENT_TTLS)], jwks=JWKS,
                            token_factory=cls.TOKEN)
        cls.timings["token"] = time.monotonic() - t
        (cls.daemon.workdir / "log").mkdir(mode=0o750, exist_ok=True)
        print(f"\n[{cls.TOKEN.kind}] token made in {cls.timings['token']:.2f}s; helpers "
              f"{cls.daemon.token_factory.helpers}; setup:\n  " + "\n  ".join(cls.daemon.token_factory.setup_log),
              flush=True)
        try:
            t = time.monotonic()
            cls.daemon.start()
            cls.timings["first start"] = time.monotonic() - t
        except BaseException:
            cls.daemon.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        d = cls.daemon
        d.stop()
        factory = d.token_factory
        pids = factory.helper_pids()
        d.cleanup()  # stops the helpers by pid
        alive = [pid for pid in pids if Path(f"/proc/{pid}").exists() and
                 Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"]
        print(f"\n[{cls.TOKEN.kind}] {time.monotonic() - cls.started:.1f}s in all; "
              + ", ".join(f"{k} {v:.2f}s" for k, v in cls.timings.items()), flush=True)
        assert not alive, f"helpers of {cls.TOKEN.kind} still running after cleanup: {alive}"

    # --- helpers ---
    def ctl_ok(self, *args):
        out = self.daemon.ctl(*args)
        self.assertEqual(out.returncode, 0, f"hsmsignctl {' '.join(args)}: {out.stdout}{out.stderr}\n"
                                            f"daemon stderr:\n{self.daemon.stderr[-3000:]}")
        return out

    def keys(self):
        answer = self.daemon.get("/v1/keys")
        self.assertEqual(answer.status, 200, answer)
        return answer.json["keys"]

    def states(self, keyset):
        return {k["kid"]: k["state"] for k in self.keys() if k["keyset"] == keyset}

    def active(self, keyset):
        return [kid for kid, state in self.states(keyset).items() if state == "active"]

    def timed(self, name, started):
        self.timings[name] = time.monotonic() - started

    def ensure_running(self):
        if self.daemon.process is None:
            self.daemon.start()

    # --- the matrix ---
    def test_1_a_jwt_per_algorithm_verifies_against_the_jwks(self):
        t = time.monotonic()
        jwks = self.daemon.jwks_json()
        for name, alg in self.keysets.items():
            with self.subTest(keyset=name, alg=alg):
                answer = self.daemon.post("/v1/jwt", {"sub": f"matrix-{name}", "keyset": name})
                self.assertEqual(answer.status, 200, f"{answer}\n{self.daemon.stderr[-3000:]}")
                header, claims = verify_jwt(answer.json["jwt"], jwks, alg)
                self.assertEqual(header["alg"], alg)
                self.assertEqual(header["kid"], answer.json["kid"])
                self.assertEqual(claims["sub"], f"matrix-{name}")
        # Several at once, so that every signer process signs: each must find the keys another generated
        # (tpm2-pkcs11 shows a process only the objects that existed at its C_Initialize).
        name, alg = next(iter(self.keysets.items()))
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: self.daemon.post("/v1/jwt", {"sub": f"many-{i}", "keyset": name}),
                                    range(24)))
        self.assertEqual([a.status for a in answers], [200] * 24, f"{answers}\n{self.daemon.stderr[-3000:]}")
        for a in answers:
            verify_jwt(a.json["jwt"], jwks, alg)
        self.timed("jwt per algorithm", t)

    def test_2_rotation_prepublishes_the_new_key_before_it_signs(self):
        t = time.monotonic()
        keyset = self.ROTATED
        alg = self.keysets[keyset]
        [old] = self.active(keyset)
        new = self.ctl_ok("rotate", keyset).stdout.strip()
        self.assertRegex(new, r"^[A-Za-z0-9_-]{43}$")
        self.assertEqual(self.states(keyset), {old: "active", new: "pending"})
        cached = self.daemon.jwks_json()  # a verifier's cache, taken while the new key does not sign yet
        self.assertIn(new, [k["kid"] for k in json.loads(cached)["keys"]], "the pending key is published")
        self.assertEqual(self.daemon.jwt(keyset=keyset)["kid"], old, "the pending key does not sign yet")
        # prepublish later the new key signs, and its tokens verify against the JWKS cached before it did.
        deadline = time.monotonic() + FAST_PREPUBLISH + 10
        while (answer := self.daemon.jwt(keyset=keyset))["kid"] != new and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(answer["kid"], new, f"the pre-published key does not sign: {self.states(keyset)}")
        verify_jwt(answer["jwt"], cached, alg)
        self.assertEqual(self.active(keyset), [new], self.states(keyset))
        self.timed("rotation", t)

    def test_3_custody_every_signing_key_born_in_the_token_and_never_extractable(self):
        t = time.monotonic()
        out = self.ctl_ok("custody", "--json")
        report = json.loads(out.stdout)
        ours = [k for k in report["keys"] if k.get("keyset") is not None]
        self.assertTrue({k["keyset"] for k in ours} >= set(self.keysets), report)
        for key in ours:
            with self.subTest(kid=key["kid"], keyset=key["keyset"]):
                self.assertIs(key["never_extractable"], True, key)
                self.assertIs(key["always_sensitive"], True, key)
                self.assertIs(key["extractable"], False, key)
                self.assertIs(key["sensitive"], True, key)
                if self.TOKEN.require_local:
                    self.assertIs(key["local"], True, key)
                else:
                    # [token] require_local = false: the token does not report CKA_LOCAL; the report says so
                    # and names the keygen audit line as the evidence instead.
                    self.assertIsNot(key["local"], True, f"NSS never sets CKA_LOCAL: {key}")
                    evidence = {k: v for k, v in key.items() if "evidence" in k}
                    self.assertTrue(evidence, f"no evidence member in {key}")
                    self.assertIn("keygen", json.dumps(evidence), key)
        self.timed("custody", t)

    def test_4_audit_checkpoint_signed_by_the_token_verifies(self):
        t = time.monotonic()
        self.daemon.jwt(keyset=self.ROTATED)
        self.ctl_ok("checkpoint")
        path = log_file(self.daemon)
        out = audit_verify(path)
        self.assertEqual(out.returncode, 0, f"audit verify: {out.stdout}{out.stderr}")
        report = parse_verify(out.stdout)
        self.assertGreaterEqual(report["checkpoints"], 1, out.stdout)
        # Independently of hsmsignctl: ES256 over the rebuilt message, with the published audit key.
        kid, public_key = load_audit_key(path)
        self.assertEqual(report["audit_kid"], kid)
        checkpoints = [r for r in records(path) if r["event"] == "checkpoint"]
        self.assertTrue(checkpoints)
        for r in checkpoints:
            self.assertTrue(checkpoint_verifies(public_key, r), r)
        self.timed("audit checkpoint", t)

    def test_5_kill_9_during_a_rotation_leaves_one_active_key(self):
        t = time.monotonic()
        d = self.daemon
        self.ensure_running()
        for delay in (0.0, 0.05, 0.15):
            with self.subTest(killed_after=delay):
                rotate = subprocess.Popen([hsmsignctl_bin(), "--config", str(d.config_path), "rotate", self.ROTATED,
                                           "--immediate"], env=d.token_env, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True)
                time.sleep(delay)
                d.kill()
                try:
                    rotate.communicate(timeout=30)
                except subprocess.TimeoutExpired:
                    rotate.kill()
                    rotate.communicate()
                try:
                    d.start()
                except DaemonError as e:
                    self.fail(f"the daemon does not start again after kill -9 {delay}s into a rotation: {e}")
                for name in self.keysets:
                    self.assertEqual(len(self.active(name)), 1, f"keyset {name}: {self.states(name)}\n{d.stderr}")
                answer = d.jwt(keyset=self.ROTATED)
                verify_jwt(answer["jwt"], d.jwks_json(), self.keysets[self.ROTATED])
        self.timed("kill -9 during rotation", t)

    def test_7_libp11_finds_the_daemons_keys_and_cannot_extract_them(self):
        t = time.monotonic()
        d = self.daemon
        factory = d.token_factory
        if not factory.shareable:
            d.stop()  # the TPM module shows another process only the keys that existed at its C_Initialize
        else:
            self.ensure_running()
        try:
            args = [libp11_probe_bin(), "--module", factory.module, "--token", factory.label,
                    "--pin-file", str(factory.pin_file), "--min-keys", str(len(self.keysets) + 1)]
            if factory.init_args is not None:
                args += ["--init-args", factory.init_args]
            if "EdDSA" in self.keysets.values():
                args.append("--fallback-enumeration")
                print(f"\n[{factory.kind}] libp11 0.4.12 cannot enumerate a token holding Ed25519 keys "
                      f"(PKCS11_enumerate_keys fails on CKK_EC_EDWARDS): the probe lists the private keys through the "
                      f"module's function list, and makes the libp11 EVP_PKEY attempt only where libp11 can",
                      flush=True)
            for rv, why in factory.probe_also_accept.items():
                args += ["--also-accept", rv]
                print(f"\n[{factory.kind}] libp11 probe also accepts {rv}: {why}", flush=True)
            out = subprocess.run(args, env=d.token_env, capture_output=True, text=True, timeout=60)
            print(f"\n[{factory.kind}] libp11_probe (daemon {'stopped' if not factory.shareable else 'running'}):\n"
                  f"{out.stdout}{out.stderr}", flush=True)
            self.assertEqual(out.returncode, 0, f"{out.stdout}{out.stderr}")
            self.assertNotIn("LEAK", out.stdout)
        finally:
            self.ensure_running()
        self.timed("libp11 probe", t)


class RefusesUnsupported:
    """For the kinds that lack an algorithm hsmsignd has (SoftHSM has them all, so it has no such test)."""

    def test_6_an_unsupported_algorithm_is_refused_at_start_naming_keyset_and_mechanism(self):
        t = time.monotonic()
        d = self.daemon
        d.stop()
        try:
            for alg in self.TOKEN.unsupported:
                with self.subTest(alg=alg):
                    name = f"unsupported-{alg.lower()}"
                    config = dict(d.config)
                    config["keyset"] = d.config["keyset"] + [{"name": name, "algorithm": alg}]
                    config["client"] = [client(keysets=[k["name"] for k in config["keyset"]], **CLIENT_TTLS)]
                    path = d.write_config(render_toml(config), "unsupported.toml")
                    process, stderr_path = d.spawn(config=path)
                    try:
                        status = process.wait(timeout=REFUSAL_TIMEOUT)
                    except subprocess.TimeoutExpired:
                        stop_process(process)
                        self.fail(f"hsmsignd with an {alg} keyset on {self.TOKEN.kind} was still running after "
                                  f"{REFUSAL_TIMEOUT}s: not refused at start\n"
                                  f"{stderr_path.read_text(errors='replace')[-3000:]}")
                    stderr = stderr_path.read_text(errors="replace")
                    self.assertNotEqual(status, 0, stderr)
                    self.assertIn(name, stderr, "the refusal names the keyset")
                    self.assertTrue("EDWARDS" in stderr.upper() or "EDDSA" in stderr.upper(),
                                    f"the refusal names the mechanism: {stderr}")
        finally:
            d.start()
        self.timed("unsupported algorithm", t)


class SoftHSMMatrixTest(TokenMatrix, unittest.TestCase):
    TOKEN = SoftHSMToken


class NSSMatrixTest(TokenMatrix, RefusesUnsupported, unittest.TestCase):
    TOKEN = NSSToken


class TPMMatrixTest(TokenMatrix, RefusesUnsupported, unittest.TestCase):
    TOKEN = TPMToken


class P11KitRemoteMatrixTest(TokenMatrix, RefusesUnsupported, unittest.TestCase):
    TOKEN = P11KitRemoteToken


if __name__ == "__main__":
    unittest.main()
