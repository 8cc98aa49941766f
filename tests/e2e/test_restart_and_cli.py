"""Restarts on the same token, crashed and doubled daemons, --check, config errors and hsmsignctl."""
import json
import re
import socket
import subprocess
import unittest

from harness import AUDIENCES, TOKEN_LABEL, Daemon, DaemonTestCase, free_port, hsmsignctl_bin, verify_jwt


class RestartTest(unittest.TestCase):
    def setUp(self):
        self.daemon = Daemon(keysets=[("es", "ES256"), ("rs", "RS256")]).start()
        self.addCleanup(self.daemon.cleanup)
        self.addCleanup(self.daemon.stop)

    def published(self):
        return self.daemon.get("/v1/keys").json, json.loads(self.daemon.jwks_json())

    def test_a_restart_keeps_the_keys_and_generates_none(self):
        self.assertEqual(self.daemon.stderr.count("event=keygen"), 2, "a fresh token gets one key per keyset")
        keys, jwks = self.published()
        token = self.daemon.jwt(keyset="rs")
        self.assertEqual(self.daemon.stop(), 0, "SIGTERM is a clean stop")
        self.daemon.start()
        self.assertNotIn("event=keygen", self.daemon.stderr, "a key was generated on a token that has them")
        self.assertEqual(self.published(), (keys, jwks))
        verify_jwt(token["jwt"], self.daemon.jwks_json(), "RS256")
        self.assertEqual(self.daemon.jwt(keyset="rs")["kid"], token["kid"])

    def test_a_stale_socket_left_by_a_crash_is_replaced(self):
        keys, _ = self.published()
        self.daemon.kill()
        self.assertTrue(self.daemon.socket_path.exists(), "kill -9 leaves the socket file behind")
        with socket.socket(socket.AF_UNIX) as nobody_home, self.assertRaises(ConnectionRefusedError):
            nobody_home.connect(str(self.daemon.socket_path))
        self.daemon.start()
        self.assertEqual(self.daemon.get("/v1/keys").json, keys)
        self.daemon.jwt()

    def test_a_second_daemon_on_a_live_socket_exits_naming_the_socket(self):
        # Its own JWKS port, so that only the socket is in the way.
        second_config = self.daemon.variant("second.toml", jwks={"listen": f"127.0.0.1:{free_port()}"})
        second, stderr_path = self.daemon.spawn(second_config)
        try:
            status = second.wait(timeout=20)
        except subprocess.TimeoutExpired:
            second.kill()
            second.wait()
            self.fail("a second daemon on the same socket kept running")
        stderr = stderr_path.read_text()
        self.assertNotEqual(status, 0, stderr)
        self.assertIn(str(self.daemon.socket_path), stderr)
        self.assertTrue(self.daemon.socket_path.exists(), "the second daemon removed the live socket")
        self.daemon.jwt()


class CheckAndConfigTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon()  # a token and a config, no running daemon
        cls.daemon.write_config()

    @classmethod
    def tearDownClass(cls):
        cls.daemon.cleanup()

    def test_check_exits_0_and_names_the_token(self):
        out = self.daemon.run_binary("--check")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(TOKEN_LABEL, out.stdout)

    def test_check_exits_1_when_the_token_is_not_there(self):
        absent = self.daemon.variant("absent.toml", token={"label": "no-such-token"})
        out = self.daemon.run_binary("--check", config=absent)
        self.assertEqual(out.returncode, 1, out)
        self.assertIn("no-such-token", out.stderr)

    def config_with_unknown_key(self):
        text = self.daemon.config_path.read_text().replace("[server]\n", "[server]\nsokcet_mode = \"0600\"\n", 1)
        line = text.splitlines().index('sokcet_mode = "0600"') + 1
        return self.daemon.write_config(text, "typo.toml"), line

    def test_an_unknown_key_is_a_config_error_naming_key_and_line(self):
        path, line = self.config_with_unknown_key()
        out = self.daemon.run_binary(config=path)
        self.assertEqual(out.returncode, 2, out)
        self.assertIn("sokcet_mode", out.stderr)
        self.assertRegex(out.stderr, rf"(:{line}\b|line {line}\b)", f"line {line} is not named")
        self.assertEqual(len(out.stderr.strip().splitlines()), 1, "one line per error")
        self.assertNotIn("e2e-throwaway-pin", out.stderr)

    def test_check_refuses_an_unknown_key(self):
        path, _ = self.config_with_unknown_key()
        out = self.daemon.run_binary("--check", config=path)
        self.assertEqual(out.returncode, 1, out)
        self.assertIn("sokcet_mode", out.stderr)


class CliTest(DaemonTestCase):
    def test_jwt_prints_the_token_alone_and_it_verifies(self):
        out = self.daemon.ctl("jwt", "--sub", "alice", "--aud", AUDIENCES[1], "--ttl", "120", "--claim", "role=admin",
                              "--claim", "level=5")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\n$")
        _, claims = verify_jwt(out.stdout.strip(), self.daemon.jwks_json(), "ES256")
        self.assertEqual((claims["sub"], claims["aud"], claims["exp"] - claims["iat"]), ("alice", AUDIENCES[1], 120))
        self.assertEqual((claims["role"], claims["level"]), ("admin", 5))

    def test_jwt_refused_exits_1_with_the_reason(self):
        out = self.daemon.ctl("jwt", "--sub", "alice", "--aud", "not-an-audience")
        self.assertEqual(out.returncode, 1, out)
        self.assertEqual(out.stdout, "")
        self.assertIn("not-an-audience", out.stderr)

    def test_jwt_without_sub_is_a_usage_error(self):
        out = self.daemon.ctl("jwt")
        self.assertEqual(out.returncode, 2, out)
        self.assertEqual(out.stdout, "")

    def test_keys_lists_the_active_key(self):
        kid = self.daemon.get("/v1/keys").json["keys"][0]["kid"]
        out = self.daemon.ctl("keys")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, rf"{re.escape(kid)}.*active")

    def test_keys_json_is_what_the_daemon_answers(self):
        out = self.daemon.ctl("keys", "--json")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout), self.daemon.get("/v1/keys").json)

    def test_jwks_prints_the_published_set(self):
        out = self.daemon.ctl("jwks")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout), json.loads(self.daemon.jwks_json()))

    def test_a_missing_socket_exits_1_naming_it(self):
        missing = self.daemon.workdir / "run" / "missing.sock"
        out = subprocess.run([hsmsignctl_bin(), "--socket", str(missing), "keys"], capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(out.returncode, 1, out)
        self.assertIn(str(missing), out.stderr)
        self.assertEqual(out.stdout, "")
        ok = subprocess.run([hsmsignctl_bin(), "--socket", str(self.daemon.socket_path), "keys"], capture_output=True,
                            text=True, timeout=30)
        self.assertEqual(ok.returncode, 0, ok.stderr)


if __name__ == "__main__":
    unittest.main()
