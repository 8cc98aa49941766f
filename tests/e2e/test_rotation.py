"""Key rotation on a schedule of seconds, under load, checked by an independent verifier; and the
operator's rotate/retire through hsmsignctl and the admin socket."""
import calendar
import os
import queue
import shutil
import stat
import subprocess
import threading
import time
import unittest

from harness import Daemon, hsmsignctl_bin, verify_jwt
from rotation_support import (CachedVerifier, Sampler, fetch_jwks, fast_schedule, jwks_kids, keys_by_state,
                              keyset_keys, prepare, token_keys)

NOBODY = 65534


def rfc3339(text):
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


class RotationUnderLoadTest(unittest.TestCase):
    """rotation_period 6s, prepublish 2s, retire_after 4s; JWKS max_age 1s; tokens live 2s."""

    MAX_AGE = 1.0
    # HSMSIGND_ROTATION_SECONDS makes it a long run (the closing notes report one).
    LOAD_SECONDS = float(os.environ.get("HSMSIGND_ROTATION_SECONDS", "25"))
    CLIENTS = 3

    def setUp(self):
        self.daemon = prepare(Daemon(**fast_schedule("6s", "2s", "4s", max_age="1s", max_ttl="2s", default_ttl="2s")))
        self.addCleanup(self.daemon.cleanup)
        self.daemon.start()
        self.addCleanup(self.daemon.stop)

    def test_every_token_verifies_at_once_against_a_cached_jwks_through_several_rotations(self):
        daemon = self.daemon
        # Bounded, so that issuers wait for the verifier rather than run ahead of it: each token must be
        # checked right after it was issued, against the cache as it was then, however fast the daemon
        # answers beside the Python verifier.
        tokens = queue.Queue(maxsize=16)
        stopping = threading.Event()
        lock = threading.Lock()
        issue_failures, verify_failures, lags = [], [], []
        counts = {"issued": 0, "verified": 0}
        signing_kids = []  # in the order they first signed

        def issue(n):
            conn = daemon.connection(timeout=10)
            try:
                while not stopping.is_set():
                    try:
                        answer = conn.call("POST", "/v1/jwt", {"sub": f"load-{n}"})
                    except OSError as e:
                        with lock:
                            issue_failures.append(f"client {n}: {e!r}")
                        conn.close()
                        conn = daemon.connection(timeout=10)
                        continue
                    if answer.status != 200:
                        with lock:
                            issue_failures.append(f"client {n}: {answer}")
                        continue
                    with lock:
                        counts["issued"] += 1
                    tokens.put((time.monotonic(), answer.json))
            finally:
                conn.close()

        verifier = CachedVerifier(daemon.port, self.MAX_AGE)
        verifier.refresh_if_stale()

        def verify():
            while True:
                try:
                    received, answer = tokens.get(timeout=0.05)
                except queue.Empty:
                    if stopping.is_set() and all(not c.is_alive() for c in clients):
                        return
                    verifier.refresh_if_stale()  # on its interval, token or not
                    continue
                verifier.refresh_if_stale()
                try:
                    header, claims = verifier.verify(answer["jwt"])
                    if header["kid"] != answer["kid"] or claims["jti"] != answer["jti"]:
                        raise AssertionError(f"the answer's kid/jti differ from the token's: {header} {claims}")
                    if claims["exp"] - claims["iat"] != 2:
                        raise AssertionError(f"default_ttl is 2s: {claims}")
                    counts["verified"] += 1
                    if header["kid"] not in signing_kids:
                        signing_kids.append(header["kid"])
                except Exception as e:
                    verify_failures.append(
                        f"{type(e).__name__}: {e} (kid {answer.get('kid')}, cached kids {verifier.kids}, "
                        f"cache age {verifier.cache_age():.2f}s, at {time.strftime('%H:%M:%S')})")
                lags.append(time.monotonic() - received)

        # Independently of the verifier: the daemon's own view, sampled.
        samples = {"keys": 0, "largest_jwks": 0, "seen": set()}
        bad_samples = []

        def sample():
            keys = keys_by_state(daemon.get("/v1/keys").json)
            if len(keys.get("default", {}).get("active", [])) != 1:
                bad_samples.append(f"not exactly one active key: {keys}")
            text, _ = fetch_jwks(daemon.port)
            kids = jwks_kids(text)
            samples["keys"] += 1
            samples["largest_jwks"] = max(samples["largest_jwks"], len(kids))
            samples["seen"].update(kids)

        clients = [threading.Thread(target=issue, args=(n,), daemon=True) for n in range(self.CLIENTS)]
        checker = threading.Thread(target=verify, daemon=True)
        sampler = Sampler(sample, 0.25)
        for t in clients + [checker, sampler]:
            t.start()
        time.sleep(self.LOAD_SECONDS)
        stopping.set()
        for t in clients:
            t.join(timeout=30)
        checker.join(timeout=60)
        sampler.stop()
        self.assertFalse(checker.is_alive(), "the verifier did not finish")
        print(f"\nunder load for {self.LOAD_SECONDS:.0f}s: {counts['issued']} tokens issued, {counts['verified']} verified, "
              f"{len(verify_failures)} failed verification, {len(issue_failures)} requests failed, "
              f"{len(signing_kids)} signing keys ({len(signing_kids) - 1} rotations), largest JWKS "
              f"{max(samples['largest_jwks'], verifier.largest)} keys", flush=True)

        self.assertEqual(issue_failures[:5], [], f"{len(issue_failures)} requests failed")
        self.assertEqual(verify_failures[:5], [], f"{len(verify_failures)} of {counts['issued']} tokens failed")
        self.assertEqual(counts["verified"], counts["issued"], "every token is verified")
        self.assertGreater(counts["verified"], 100)
        self.assertLess(max(lags), 1.0, "the verifier checks every token at once")
        self.assertGreaterEqual(len(signing_kids), 4, f"at least 3 rotations in {self.LOAD_SECONDS}s: {signing_kids}")
        self.assertEqual(verifier.cache_controls, {1}, "Cache-Control max-age is jwks.max_age")
        self.assertIsNone(sampler.error, repr(sampler.error))
        self.assertEqual(bad_samples[:3], [])
        self.assertGreater(samples["keys"], 20)
        largest = max(samples["largest_jwks"], verifier.largest)
        self.assertLessEqual(largest, 3, "the JWKS holds pending + active + retiring keys at most")

        # Every kid that left the JWKS has left the token (destroy_retired); every published kid is there.
        final_jwks = jwks_kids(daemon.jwks_json())
        on_token = keyset_keys(token_keys(daemon.token_env))
        token_kids = {k.kid for k in on_token.values()}
        left = (samples["seen"] | verifier.seen_kids | set(signing_kids)) - set(final_jwks)
        self.assertGreaterEqual(len(left), 2, f"retired keys: {sorted(left)}")
        self.assertEqual(sorted(left & token_kids), [], f"retired keys still on the token: {on_token}")
        self.assertLessEqual(set(final_jwks), token_kids, f"published keys not on the token: {on_token}")
        self.assertLessEqual(len(on_token), 3, on_token)
        self.assertTrue(all(k.complete for k in on_token.values()), on_token)


class AdminTest(unittest.TestCase):
    """Operator actions with a slow schedule, so that only the operator changes the keys."""

    def setUp(self):
        self.daemon = prepare(Daemon(keysets=[{"name": "default", "algorithm": "ES256", "rotation_period": "1h",
                                               "prepublish": "10m", "retire_after": "30m",
                                               "destroy_retired": True}]))
        self.addCleanup(self.daemon.cleanup)
        self.daemon.start()
        self.addCleanup(self.daemon.stop)

    @property
    def admin_socket(self):
        return self.daemon.workdir / self.daemon.config["server"]["admin_socket"]

    def keys(self):
        answer = self.daemon.get("/v1/keys")
        self.assertEqual(answer.status, 200, answer)
        return answer.json["keys"]

    def states(self):
        return {k["kid"]: k["state"] for k in self.keys()}

    def active_kid(self):
        active = [k["kid"] for k in self.keys() if k["state"] == "active"]
        self.assertEqual(len(active), 1, self.keys())
        return active[0]

    def ctl_ok(self, *args):
        out = self.daemon.ctl(*args)
        self.assertEqual(out.returncode, 0, f"hsmsignctl {' '.join(args)}: {out.stderr}")
        return out

    def token_kids(self):
        return {k.kid for k in keyset_keys(token_keys(self.daemon.token_env)).values()}

    def test_rotate_prepublishes_a_pending_key(self):
        old = self.active_kid()
        out = self.ctl_ok("rotate", "default")
        kid = out.stdout.strip()
        self.assertRegex(kid, r"^[A-Za-z0-9_-]{43}$", out.stdout)
        self.assertEqual(self.states(), {old: "active", kid: "pending"})
        new = next(k for k in self.keys() if k["kid"] == kid)
        self.assertAlmostEqual(rfc3339(new["activates"]) - time.time(), 600, delta=30,
                               msg=f"a rotated key signs prepublish (10m) from now: {new}")
        self.assertEqual(sorted(jwks_kids(self.daemon.jwks_json())), sorted([old, kid]))
        self.assertEqual(sorted(jwks_kids(self.daemon.jwks_file_json())), sorted([old, kid]))
        self.assertIn(kid, self.token_kids())
        self.assertEqual(self.daemon.jwt()["kid"], old, "the pending key does not sign yet")

    def test_rotate_immediate_signs_with_a_new_key_at_once_and_keeps_the_old_one_published(self):
        old = self.active_kid()
        before = self.daemon.jwt(ttl=600)
        out = self.ctl_ok("rotate", "default", "--immediate")
        kid = out.stdout.strip()
        self.assertNotEqual(kid, old)
        self.assertEqual(self.states(), {old: "retiring", kid: "active"})
        self.assertEqual(self.daemon.jwt()["kid"], kid)
        jwks = self.daemon.jwks_json()
        self.assertEqual(sorted(jwks_kids(jwks)), sorted([old, kid]))
        verify_jwt(before["jwt"], jwks, "ES256")  # a token of the old key still verifies
        self.assertLessEqual({old, kid}, self.token_kids())

    def test_retire_the_active_key_replaces_it_and_drops_it_from_jwks_and_token(self):
        old = self.active_kid()
        self.assertIn(old, self.token_kids())
        out = self.ctl_ok("retire", old)
        self.assertEqual(out.stdout, "")
        states = self.states()
        self.assertNotIn(old, states)
        self.assertEqual(list(states.values()), ["active"], states)
        new = self.active_kid()
        self.assertNotEqual(new, old)
        self.assertEqual(jwks_kids(self.daemon.jwks_json()), [new])
        self.assertEqual(jwks_kids(self.daemon.jwks_file_json()), [new])
        self.assertEqual(self.daemon.jwt()["kid"], new)
        token = self.token_kids()
        self.assertNotIn(old, token, "destroy_retired: the retired key is destroyed on the token")
        self.assertIn(new, token)

    def test_retire_a_pending_key_drops_it_and_keeps_the_active_one(self):
        old = self.active_kid()
        pending = self.ctl_ok("rotate", "default").stdout.strip()
        self.ctl_ok("retire", pending)
        self.assertEqual(self.states(), {old: "active"})
        self.assertEqual(jwks_kids(self.daemon.jwks_json()), [old])
        self.assertNotIn(pending, self.token_kids())

    def test_retire_an_unknown_kid_exits_1_naming_it(self):
        before = self.states()
        unknown = "A" * 43
        out = self.daemon.ctl("retire", unknown)
        self.assertEqual(out.returncode, 1, out)
        self.assertEqual(out.stdout, "")
        self.assertIn(unknown, out.stderr)
        self.assertEqual(len(out.stderr.strip().splitlines()), 1, out.stderr)
        self.assertEqual(self.states(), before)

    def test_rotate_an_unknown_keyset_exits_1(self):
        before = self.states()
        out = self.daemon.ctl("rotate", "no-such-keyset")
        self.assertEqual(out.returncode, 1, out)
        self.assertIn("no-such-keyset", out.stderr)
        self.assertEqual(self.states(), before)

    def test_the_admin_socket_is_mode_0600(self):
        st = os.stat(self.admin_socket)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600, oct(st.st_mode))
        self.assertEqual(st.st_uid, os.geteuid())

    def test_a_non_root_user_cannot_use_the_admin_socket(self):
        setpriv = shutil.which("setpriv")
        self.assertIsNotNone(setpriv, "setpriv (util-linux) is needed to run a command as another uid")
        self.assertEqual(os.geteuid(), 0, "the e2e tests run as root, so that they can become uid 65534")
        before = self.states()

        def as_uid(uid, *args):
            return subprocess.run([setpriv, f"--reuid={uid}", "--regid=0", "--clear-groups", hsmsignctl_bin(),
                                   "--admin-socket", str(self.admin_socket), *args],
                                  capture_output=True, text=True, timeout=30)

        for args in (("rotate", "default"), ("rotate", "default", "--immediate"), ("retire", self.active_kid())):
            with self.subTest(args=args):
                out = as_uid(NOBODY, *args)
                self.assertEqual(out.returncode, 1, out)
                self.assertIn(str(self.admin_socket), out.stderr)
                self.assertEqual(self.states(), before)
        # The socket refuses the connection itself, whatever the client.
        probe = ("import socket, sys\ns = socket.socket(socket.AF_UNIX)\n"
                 "try:\n    s.connect(sys.argv[1])\nexcept PermissionError:\n    print('EACCES')\n"
                 "else:\n    print('connected')\n")
        out = subprocess.run([setpriv, f"--reuid={NOBODY}", "--regid=0", "--clear-groups", "/usr/bin/python3", "-c",
                              probe, str(self.admin_socket)], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.stdout.strip(), "EACCES", out)
        # The same command as root works: the refusal above is the socket's mode, not setpriv.
        out = as_uid(0, "rotate", "default")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(out.stdout.strip(), self.states())


if __name__ == "__main__":
    unittest.main()
