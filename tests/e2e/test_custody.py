"""The custody report (hsmsignctl custody, GET /v1/admin/custody), hsmsignctl checkpoint, and who may use
the admin socket.

The token also holds a key hsmsignd did not make: an EC key generated outside with OpenSSL and imported with
OpenSC's pkcs11-tool. It is the negative case of every custody attribute: not CKA_LOCAL, no keyset. Another
token holds a stray RSA key pair labelled for an ES256 keyset, which the report lists as refused, as the daemon
refuses it.
"""
import json
import os
import re
import shutil
import stat
import subprocess
import time
import unittest

from harness import MODULE, PIN, TOKEN_LABEL, Daemon, FreshDaemonTestCase, b64url, client, hsmsignctl_bin
from test_audit import (NOBODY, admin, admin_socket, as_uid, audit_verify, digest_of, load_audit_key, log_file,
                        parse_verify, read_lines, records, rotated_files, sighup_and_wait)
from test_openapi import SPEC_PATH, Document

IMPORTED_ID = "c0ffee01"
TOKEN_FIELDS = ["label", "serial", "model", "manufacturer"]
KEY_FIELDS = ["kid", "keyset", "label", "id", "algorithm", "state", "created", "activates", "deactivates", "retires",
              "local", "never_extractable", "always_sensitive", "extractable", "sensitive", "signatures"]
CUSTODY_FLAGS = ["local", "never_extractable", "always_sensitive", "extractable", "sensitive"]
RFC3339 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def import_foreign_key(daemon):
    """An EC P-256 key made by OpenSSL, written to the token with pkcs11-tool: local false, whatever else."""
    pem = daemon.workdir / "imported.pem"
    out = subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                          "-out", str(pem)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    out = subprocess.run(["pkcs11-tool", "--module", MODULE, "--token-label", TOKEN_LABEL, "--login", "--pin", PIN,
                          "--write-object", str(pem), "--type", "privkey", "--id", IMPORTED_ID, "--label", "imported"],
                         env=daemon.token_env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    pem.unlink()


class ReportsTestCase(unittest.TestCase):
    """A daemon for the class, and what it says of its keys once the class has set it up: /v1/keys and the
    custody report three ways (hsmsignctl --json, the admin API, the table)."""

    @classmethod
    def read_reports(cls):
        d = cls.daemon
        cls.keys = {k["kid"]: k for k in d.get("/v1/keys").json["keys"]}
        cls.cli = d.ctl("custody", "--json")
        cls.api = admin(d, "GET", "/v1/admin/custody")
        cls.table = d.ctl("custody")

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()
        cls.daemon.cleanup()

    def reports(self):
        self.assertEqual(self.cli.returncode, 0, self.cli.stderr)
        self.assertEqual(self.api.status, 200, self.api)
        self.assertIn("application/json", self.api.headers.get("content-type", ""))
        return {"hsmsignctl custody --json": json.loads(self.cli.stdout), "GET /v1/admin/custody": self.api.json}


class CustodyTest(ReportsTestCase):
    """Keysets "default" (ES256) and "rs" (RS256), tokens from both, a log rotated by SIGHUP in between, an
    immediate rotation of "default", and the imported key."""

    @classmethod
    def setUpClass(cls):
        cls.daemon = d = Daemon(keysets=[("default", "ES256"), ("rs", "RS256")],
                                clients=[client(keysets=["default", "rs"])])
        try:
            import_foreign_key(d)
            d.start()
            cls.counts = {}

            def count(answer):
                assert answer.status == 200, answer
                kid = answer.json["kid"]
                cls.counts[kid] = cls.counts.get(kid, 0) + 1

            for i in range(3):
                count(d.post("/v1/jwt", {"sub": f"user-{i}"}))
            for i in range(2):
                count(d.post("/v1/jwt", {"sub": f"rs-{i}", "keyset": "rs"}))
            count(d.post("/v1/jws", {"payload": b64url(b"custody")}))
            count(d.post("/v1/sign", {"digest": digest_of("custody"), "keyset": "rs"}))
            sighup_and_wait(d)  # the counts must include the rotated-out file
            out = d.ctl("rotate", "default", "--immediate")
            assert out.returncode == 0, out.stderr
            cls.rotated_kid = out.stdout.strip()
            for i in range(2):
                count(d.post("/v1/jwt", {"sub": f"after-{i}"}))
            cls.read_reports()
        except BaseException:
            d.cleanup()
            raise

    def hsmsignd_keys(self, report):
        return [k for k in report["keys"] if k["keyset"] is not None]

    def test_both_reports_have_the_contract_shape(self):
        for source, report in self.reports().items():
            with self.subTest(source):
                self.assertEqual(set(report), {"token", "keys"})
                self.assertEqual(set(report["token"]), set(TOKEN_FIELDS))
                self.assertEqual(report["token"]["label"], TOKEN_LABEL)
                self.assertEqual(report["token"]["manufacturer"], "SoftHSM project")
                self.assertTrue(report["token"]["serial"])
                self.assertTrue(report["token"]["model"])
                for key in report["keys"]:
                    missing = [f for f in KEY_FIELDS if f not in key]
                    self.assertEqual(missing, [], key)
                    for flag in CUSTODY_FLAGS:
                        self.assertIs(type(key[flag]), bool, (flag, key))
                    self.assertIs(type(key["signatures"]), int, key)
                    self.assertRegex(key["id"], r"^[0-9a-f]+$")
                # default x2, rs, audit, imported
                self.assertEqual(len(report["keys"]), 5, report["keys"])

    def test_the_cli_and_the_admin_api_agree(self):
        reports = list(self.reports().values())
        by_id = [{k["id"]: k for k in r["keys"]} for r in reports]
        self.assertEqual(by_id[0], by_id[1])
        self.assertEqual(reports[0]["token"], reports[1]["token"])

    def test_every_hsmsignd_key_was_born_in_the_token_and_cannot_leave(self):
        for source, report in self.reports().items():
            mine = self.hsmsignd_keys(report)
            self.assertEqual(len(mine), 4, mine)
            for key in mine:
                with self.subTest(source, kid=key["kid"]):
                    self.assertEqual({f: key[f] for f in CUSTODY_FLAGS},
                                     {"local": True, "never_extractable": True, "always_sensitive": True,
                                      "extractable": False, "sensitive": True})

    def test_the_imported_key_is_not_local_and_has_no_keyset(self):
        for source, report in self.reports().items():
            with self.subTest(source):
                imported = [k for k in report["keys"] if k["id"] == IMPORTED_ID]
                self.assertEqual(len(imported), 1, report["keys"])
                k = imported[0]
                self.assertEqual((k["label"], k["keyset"], k["state"]), ("imported", None, None))
                self.assertIs(k["local"], False)
                self.assertIs(k["never_extractable"], False)
                self.assertIs(k["always_sensitive"], False)
                self.assertEqual(k["signatures"], 0)
                self.assertNotIn(k["kid"], self.keys)
        # ...and the daemon does not publish or sign with it.
        published = {k["kid"] for k in json.loads(self.daemon.jwks_json())["keys"]}
        self.assertEqual(published, set(self.keys))

    def test_the_audit_key_is_listed_with_keyset_audit(self):
        kid, _ = load_audit_key(log_file(self.daemon))
        checkpoint_kids = {r["kid"] for f in rotated_files(log_file(self.daemon)) + [log_file(self.daemon)]
                           for r in records(f) if r["event"] == "checkpoint"}
        for source, report in self.reports().items():
            with self.subTest(source):
                audit = [k for k in report["keys"] if k["keyset"] == "audit"]
                self.assertEqual(len(audit), 1, report["keys"])
                self.assertEqual((audit[0]["kid"], audit[0]["algorithm"], audit[0]["state"]), (kid, "ES256", "active"))
                self.assertEqual(audit[0]["signatures"], 0, "checkpoints are not issued signatures")
                self.assertNotIn(kid, self.keys, "the audit key is not a keyset key")
        self.assertLessEqual(checkpoint_kids, {kid})

    def test_lifecycle_fields_are_those_the_daemon_serves(self):
        for source, report in self.reports().items():
            for key in report["keys"]:
                if key["keyset"] in ("default", "rs"):
                    with self.subTest(source, kid=key["kid"]):
                        served = self.keys[key["kid"]]
                        for field in ("keyset", "state", "created", "activates", "deactivates", "retires"):
                            self.assertEqual(key[field], served[field], field)
                        self.assertEqual(key["algorithm"], served["alg"])
                        self.assertRegex(key["created"], RFC3339)
            states = sorted((k["keyset"], k["state"]) for k in self.hsmsignd_keys(report) if k["keyset"] != "audit")
            self.assertEqual(states, [("default", "active"), ("default", "retiring"), ("rs", "active")])
            active = [k["kid"] for k in report["keys"] if k["keyset"] == "default" and k["state"] == "active"]
            self.assertEqual(active, [self.rotated_kid])

    def test_signature_counts_are_what_was_issued_per_kid(self):
        self.assertEqual(len(self.counts), 3, "both default keys and the rs key signed")
        self.assertGreater(len(rotated_files(log_file(self.daemon))), 0)
        for source, report in self.reports().items():
            with self.subTest(source):
                counted = {k["kid"]: k["signatures"] for k in report["keys"] if k["signatures"]}
                self.assertEqual(counted, self.counts)
        # The same numbers the verifier finds in the files.
        out = audit_verify(*rotated_files(log_file(self.daemon)), log_file(self.daemon))
        self.assertEqual(out.returncode, 0, out)
        self.assertEqual(parse_verify(out.stdout)["by_kid"], self.counts)

    def test_the_table_names_every_kid(self):
        self.assertEqual(self.table.returncode, 0, self.table.stderr)
        report = json.loads(self.cli.stdout)
        rows = {}
        for k in report["keys"]:
            if k["kid"] is None:
                continue
            row = [line for line in self.table.stdout.splitlines() if line.startswith(k["kid"])]
            self.assertEqual(len(row), 1, (k["kid"], self.table.stdout))
            rows[k["id"]] = row[0].split()
        self.assertGreaterEqual(len(rows), 4)
        self.assertIn(TOKEN_LABEL, self.table.stdout.splitlines()[0])
        for k in self.hsmsignd_keys(report):
            # KID KEYSET ALG STATE ACTIVATES LOCAL NEVX ALWS EXTR SENS SIGNATURES
            cells = rows[k["id"]]
            self.assertEqual(cells[1], k["keyset"])
            self.assertEqual(cells[5:10], ["yes", "yes", "yes", "no", "yes"], cells)
            self.assertEqual(cells[10], str(k["signatures"]))
        # The imported key reads as what it is, whether or not it has a kid: no keyset, LOCAL "NO".
        imported = [line.split() for line in self.table.stdout.splitlines()
                    if len(line.split()) == 11 and line.split()[1] == "-"]
        self.assertEqual(len(imported), 1, self.table.stdout)
        self.assertEqual(imported[0][5], "NO", imported[0])
        self.assertNotIn(PIN, self.table.stdout + self.table.stderr)

    def test_custody_with_a_wrong_pin_exits_1_without_the_pin(self):
        wrong = self.daemon.workdir / "wrong-pin"
        wrong.write_text("not-the-pin\n")
        os.chmod(wrong, 0o600)
        config = self.daemon.variant("wrong-pin.toml", token={"pin_file": "wrong-pin"})
        out = subprocess.run([hsmsignctl_bin(), "--config", str(config), "custody", "--json"],
                             env=self.daemon.token_env, capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 1, out)
        self.assertEqual(out.stdout, "")
        self.assertEqual(len(out.stderr.strip().splitlines()), 1, out.stderr)
        self.assertNotIn("not-the-pin", out.stderr)
        self.assertNotIn(PIN, out.stderr)

    def test_admin_custody_takes_get(self):
        answer = admin(self.daemon, "POST", "/v1/admin/custody", {})
        self.assertEqual(answer.status, 405, answer)
        self.assertEqual(answer.json["error"], "method_not_allowed")


STRAY_ID = "5747a7"
KEY_REFUSED = re.compile(r'^hsmsignd\[error\] event=key_refused keyset=(\S+) label=(\S+) reason=("[^"]*"|\S+)$', re.M)


class RefusedKeyTest(ReportsTestCase):
    """A stray RSA key pair, made with pkcs11-tool, labelled for the ES256 keyset "default" to activate after its
    real key: the daemon refuses it (key_refused), and the custody report must say so too, not schedule it."""

    @classmethod
    def setUpClass(cls):
        cls.daemon = d = Daemon(keysets=[("default", "ES256")])
        try:
            d.start()
            time.sleep(1.1)  # labels hold whole seconds: the stray key activates after the real one
            now = int(time.time())
            cls.stray_label = f"hsmsignd/default/{now}/{now}"
            out = subprocess.run(["pkcs11-tool", "--module", MODULE, "--token-label", TOKEN_LABEL, "--login", "--pin",
                                  PIN, "--keypairgen", "--key-type", "rsa:2048", "--label", cls.stray_label,
                                  "--id", STRAY_ID], env=d.token_env, capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stderr
            # SoftHSM in the daemon sees another process's change at its next search, but not when a write of its
            # own comes first (then it did not see it at all): have it look before the rotation writes.
            assert STRAY_ID in {k["id"] for k in admin(d, "GET", "/v1/admin/custody").json["keys"]}
            # A rotation makes the daemon's keyring read the token again now (and gives the keyset a pending key).
            out = d.ctl("rotate", "default")
            assert out.returncode == 0, out.stderr
            cls.read_reports()
            cls.check = d.run_binary("--check")
        except BaseException:
            d.cleanup()
            raise

    def test_the_keyset_keys_and_their_states_are_those_of_v1_keys(self):
        self.assertEqual(sorted(k["state"] for k in self.keys.values()), ["active", "pending"])
        for source, report in self.reports().items():
            with self.subTest(source):
                listed = {k["kid"]: k for k in report["keys"] if k["keyset"] == "default" and k["state"] != "refused"}
                self.assertEqual(set(listed), set(self.keys), report["keys"])
                for kid, served in self.keys.items():
                    for field in ("state", "created", "activates", "deactivates", "retires"):
                        self.assertEqual(listed[kid][field], served[field], (field, listed[kid]))
                    self.assertEqual(listed[kid]["algorithm"], served["alg"])
                    self.assertNotIn("reason", listed[kid])

    def test_check_says_what_the_daemon_uses_and_what_it_refuses(self):
        self.assertEqual(self.check.returncode, 0, self.check.stderr)
        self.assertIn(f"keyset default: key {self.stray_label}: REFUSED (wrong type or size)", self.check.stdout)
        used = [line for line in self.check.stdout.splitlines() if line.startswith("keyset default: key ")
                and line.endswith(": ok")]
        self.assertEqual(len(used), len(self.keys), self.check.stdout)

    def test_the_stray_key_is_listed_as_refused_for_the_reason_the_daemon_logs(self):
        logged = {(m[1], m[2]): m[3].strip('"') for m in KEY_REFUSED.finditer(self.daemon.stderr)}
        self.assertIn(("default", self.stray_label), logged, self.daemon.stderr)
        for source, report in self.reports().items():
            with self.subTest(source):
                stray = [k for k in report["keys"] if k["id"] == STRAY_ID]
                self.assertEqual(len(stray), 1, report["keys"])
                k = stray[0]
                self.assertEqual((k["keyset"], k["label"], k["state"]), ("default", self.stray_label, "refused"), k)
                self.assertEqual(k["reason"], logged[("default", self.stray_label)], k)
                self.assertEqual((k["algorithm"], k["bits"]), ("RS256", 2048), "what the key is, not the keyset's")
                self.assertEqual([k[f] for f in ("created", "activates", "deactivates", "retires")], [None] * 4)
                self.assertNotIn(k["kid"], self.keys)
                self.assertEqual(k["signatures"], 0)
        published = {k["kid"] for k in json.loads(self.daemon.jwks_json())["keys"]}
        self.assertEqual(published, set(self.keys))

    def test_both_reports_match_the_documented_schema(self):
        document = Document(SPEC_PATH)
        for source, report in self.reports().items():
            with self.subTest(source):
                self.assertEqual(document.errors("#/components/schemas/CustodyReport", report), [])

    def test_the_table_shows_the_stray_key_refused(self):
        self.assertEqual(self.table.returncode, 0, self.table.stderr)
        stray = next(k for k in json.loads(self.cli.stdout)["keys"] if k["id"] == STRAY_ID)
        self.assertIsNotNone(stray["kid"], "an RSA key's thumbprint, read from the token like any other")
        rows = [line.split() for line in self.table.stdout.splitlines() if line.startswith(stray["kid"] + " ")]
        self.assertEqual([cells[1:4] for cells in rows], [["default", "RS256", "refused"]], self.table.stdout)


class CheckpointCommandTest(FreshDaemonTestCase):
    def checkpoint_lines(self):
        return [r for r in records(log_file(self.daemon)) if r["event"] == "checkpoint"]

    def test_hsmsignctl_checkpoint_writes_a_signed_checkpoint_now(self):
        d = self.daemon
        d.jwt(sub="x")
        self.assertEqual(self.checkpoint_lines(), [])
        out = d.ctl("checkpoint")
        self.assertEqual(out.returncode, 0, out.stderr)
        m = re.fullmatch(r"checkpoint written at seq (\d+)\n", out.stdout)
        self.assertTrue(m, out.stdout)
        # Durable before the answer: it is in the file already, as the last line, covering everything.
        lines = read_lines(log_file(d))
        self.assertEqual(json.loads(lines[-1]), self.checkpoint_lines()[0])
        self.assertEqual(self.checkpoint_lines()[0]["seq"], int(m[1]))
        verified = audit_verify(log_file(d))
        self.assertEqual(verified.returncode, 0, verified)
        self.assertEqual(parse_verify(verified.stdout)["uncovered"], 0)
        self.assertEqual(parse_verify(verified.stdout)["checkpoints"], 1)
        # The admin API says the same.
        answer = admin(d, "POST", "/v1/admin/checkpoint", {})
        self.assertEqual(answer.status, 200, answer)
        self.assertEqual(answer.json["seq"], self.checkpoint_lines()[-1]["seq"])
        self.assertEqual(len(self.checkpoint_lines()), 2)
        self.assertEqual(admin(d, "GET", "/v1/admin/checkpoint").status, 405)

    def test_a_non_root_uid_cannot_use_the_admin_socket(self):
        """Two layers: the socket file is 0600 root, so connect() itself is refused (EACCES) for any other uid;
        were it reachable, the daemon checks SO_PEERCRED and answers 403 with a deny audit line."""
        d = self.daemon
        sock = admin_socket(d)
        st = os.stat(sock)
        self.assertEqual((stat.S_IMODE(st.st_mode), st.st_uid), (0o600, 0))
        setpriv = shutil.which("setpriv")
        self.assertIsNotNone(setpriv)
        before = self.checkpoint_lines()

        def ctl_as(uid):
            return subprocess.run([setpriv, f"--reuid={uid}", "--regid=0", "--clear-groups", hsmsignctl_bin(),
                                   "--admin-socket", str(sock), "checkpoint"], capture_output=True, text=True,
                                  timeout=30)

        out = ctl_as(NOBODY)
        self.assertEqual(out.returncode, 1, out)
        self.assertIn(str(sock), out.stderr)
        self.assertRegex(out.stderr, r"(?i)permission denied|EACCES")
        self.assertEqual(self.checkpoint_lines(), before)
        # Layer 2: with the file opened up (on this throw-away socket only), the daemon itself refuses.
        os.chmod(sock, 0o666)
        try:
            answers = as_uid(NOBODY, sock, [["POST", "/v1/admin/checkpoint", {}], ["GET", "/v1/admin/custody", None]])
        finally:
            os.chmod(sock, 0o600)
        for answer in answers:
            self.assertEqual(answer["status"], 403, answer)
            self.assertEqual(json.loads(answer["body"])["error"], "forbidden")
        self.assertNotIn('"keys"', answers[1]["body"])
        self.assertEqual(self.checkpoint_lines(), before)
        # Positive beside it: the same command as root works.
        out = ctl_as(0)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(len(self.checkpoint_lines()), len(before) + 1)
        self.assertEqual(d.stop(), 0)
        denies = [r for r in records(log_file(d)) if r["event"] == "deny"]
        self.assertEqual([(r["uid"], r["reason"]) for r in denies], [(NOBODY, "admin socket")] * 2)


if __name__ == "__main__":
    unittest.main()
