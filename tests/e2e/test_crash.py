"""The key lifecycle survives kill -9 at random instants of a fast schedule, and two daemons on one
token converge to the same keys. The token is read directly (pkcs11-tool), not through the daemon."""
import calendar
import os
import random
import subprocess
import threading
import time
import unittest

from harness import MODULE, PIN, TOKEN_LABEL, Daemon, DaemonError, UnixHTTPConnection, free_port, verify_jwt
from rotation_support import (PKCS11_TOOL, Sampler, fast_schedule, fetch_jwks, jwks_kids, keys_by_state, keyset_keys,
                              pending_on_token, prepare, token_keys)

# rotation_period 3s, prepublish 1s, retire_after 3s; JWKS max_age 1s; tokens live up to 2s.
SCHEDULE = fast_schedule("3s", "1s", "3s", max_age="1s", max_ttl="2s", default_ttl="2s")
KEYSETS = ["default"]
SETTLE_ATTEMPTS = 5  # a sample can straddle a transition of the daemon: look again before calling it wrong
SETTLE_PAUSE = 0.3
# Half a key pair is kept for its grace, since another process may be between the two halves of
# C_GenerateKeyPair (kOrphanGrace in keyring.cpp, for EC keys), then removed at once. A kill -9 during a
# key generation, or two processes racing on SoftHSM, can leave one behind at any instant: only a half
# past its grace (and the keyring's next turn on two busy cores) is the daemon's fault.
ORPHAN_GRACE = 10
ORPHAN_SLACK = 3


def overdue_halves(token, now):
    return [k for k in token.values()
            if not k.complete and k.schedule and k.schedule["created"] < now - ORPHAN_GRACE - ORPHAN_SLACK]


def halves_left(env):
    """Waits out the grace of every half on the token; the halves still there after it."""
    deadline = time.time() + ORPHAN_GRACE + ORPHAN_SLACK
    while (halves := [k for k in keyset_keys(token_keys(env)).values() if not k.complete]) and time.time() < deadline:
        time.sleep(0.5)
    return halves


def active_violations(daemon_keys):
    """Each keyset has exactly one active key in /v1/keys."""
    states = keys_by_state(daemon_keys)
    return [f"keyset {keyset}: {len(states.get(keyset, {}).get('active', []))} active keys in /v1/keys: {states}"
            for keyset in KEYSETS if len(states.get(keyset, {}).get("active", [])) != 1]


def rfc3339(text):
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def look(keys_of, jwks_of, env):
    """One picture of a daemon and its token, read in this order: /v1/keys, the JWKS, the token."""
    keys = keys_of()
    jwks_read = time.time()
    jwks = jwks_of()
    token = token_keys(env)
    return {"keys": keys, "jwks": jwks, "jwks_read": jwks_read, "token": token, "token_read": time.time()}


def consistency_violations(p):
    """What is wrong between the daemon's JWKS and the token, allowing only what a transition between
    the reads explains: a key destroyed after the JWKS was read because its `retires` had come, or a key
    generated after the JWKS was read. [] when nothing."""
    problems = []
    token = p["token"]
    complete = {k.kid for k in token.values() if k.complete}
    published = set(jwks_kids(p["jwks"]))
    retires = {k["kid"]: rfc3339(k["retires"]) for k in p["keys"]["keys"]}
    missing = [kid for kid in published - complete if retires.get(kid, float("inf")) > p["token_read"]]
    if missing:
        problems.append(f"the JWKS names keys the token does not hold: {sorted(missing)}; "
                        f"/v1/keys {p['keys']}; token {token}")
    for keyset in KEYSETS:
        mine = keyset_keys(token, keyset)
        if len(mine) > 4:
            problems.append(f"keyset {keyset}: {len(mine)} keys on the token (at most 3, + 1 transiently): {mine}")
        orphans = [k for k in mine.values() if k.complete and k.kid not in published and not k.schedule["retired"]
                   and k.schedule["created"] < int(p["jwks_read"]) - 1]
        if orphans:
            problems.append(f"keyset {keyset}: keys on the token that are not published: {orphans}; "
                            f"JWKS {sorted(published)}")
    return problems


def settling_violations(p):
    """What may be seen for an instant (a key half made or half destroyed, /v1/keys and the JWKS read
    on either side of a transition) but must not last."""
    problems = []
    halves = overdue_halves(p["token"], p["token_read"])
    if halves:
        problems.append(f"keys with only one half on the token past their grace: {halves}")
    listed = {k["kid"] for k in p["keys"]["keys"]}
    published = set(jwks_kids(p["jwks"]))
    if listed != published:
        problems.append(f"/v1/keys {sorted(listed)} and the JWKS {sorted(published)} differ")
    return problems


def invariant_violations(p):
    return active_violations(p["keys"]) + consistency_violations(p) + settling_violations(p)


def token_violations(jwks_text, valid_tokens):
    """Tokens still valid that the JWK Set does not verify."""
    problems = []
    for answer in valid_tokens:
        try:
            verify_jwt(answer["jwt"], jwks_text, "ES256")
        except Exception as e:
            problems.append(f"a still valid token (kid {answer['kid']}, exp {answer['exp']}) does not verify "
                            f"against {jwks_kids(jwks_text)}: {e!r}")
    return problems


def stamp():
    """Wall-clock time with milliseconds, to line problems up with the daemons' audit logs."""
    now = time.time()
    return time.strftime("%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def settled(picture, attempts=SETTLE_ATTEMPTS, pause=SETTLE_PAUSE):
    """Calls picture() until it reports no problem; the last problems otherwise."""
    problems = []
    for attempt in range(attempts):
        problems = picture()
        if not problems:
            return []
        time.sleep(pause)
    return problems


class CrashLoopTest(unittest.TestCase):
    ITERATIONS = 18

    def setUp(self):
        self.daemon = prepare(Daemon(**SCHEDULE))
        self.addCleanup(self.daemon.cleanup)
        self.addCleanup(self.daemon.stop)

    def look(self):
        return look(lambda: self.daemon.get("/v1/keys").json, self.daemon.jwks_json, self.daemon.token_env)

    def picture(self):
        return invariant_violations(self.look())

    def test_kill_9_at_random_instants_keeps_the_lifecycle_invariants(self):
        rng = random.Random()
        seed = rng.randrange(2**32)
        rng.seed(seed)
        daemon = self.daemon
        issued = []  # every token answered before a crash
        most_keys = 0
        kids_seen = set()
        checked_tokens = 0
        daemon.start()
        for iteration in range(self.ITERATIONS):
            stopping = threading.Event()

            def issue():
                conn = daemon.connection(timeout=5)
                try:
                    while not stopping.is_set():
                        answer = conn.call("POST", "/v1/jwt", {"sub": f"crash-{iteration}"})
                        if answer.status == 200:
                            issued.append(answer.json)
                        time.sleep(0.01)
                except OSError:
                    pass  # the daemon was killed under it
                finally:
                    conn.close()

            client = threading.Thread(target=issue, daemon=True)
            client.start()
            pause = rng.uniform(0, 1.5)
            time.sleep(pause)
            stopping.set()
            daemon.kill()
            client.join(timeout=10)
            where = f"iteration {iteration} (seed {seed}, killed {pause:.2f}s after the start)"
            try:
                daemon.start()
            except DaemonError as e:
                self.fail(f"{where}: the daemon does not start again after kill -9: {e}")

            # Right after the restart, once: exactly one active key, every token still valid verifies,
            # and the JWKS and the token agree.
            now = time.time()
            valid = [t for t in issued if t["exp"] > now]
            checked_tokens += len(valid)
            picture = self.look()
            problems = (active_violations(picture["keys"]) + token_violations(picture["jwks"], valid)
                        + consistency_violations(picture))
            self.assertEqual(problems, [], f"{where}:\n" + "\n".join(problems) + f"\nstderr:\n{daemon.stderr}")
            # What may be seen for an instant must be gone soon (an orphaned half is cleaned up at start).
            problems = settled(lambda: settling_violations(self.look()))
            self.assertEqual(problems, [], f"{where}:\n" + "\n".join(problems) + f"\nstderr:\n{daemon.stderr}")
            token = keyset_keys(token_keys(daemon.token_env))
            most_keys = max(most_keys, len(token))
            kids_seen |= {k.kid for k in token.values()}

        # Several rotations happened across the crashes, and the token stayed bounded.
        self.assertGreater(checked_tokens, self.ITERATIONS, "tokens from before the crashes were checked")
        self.assertGreaterEqual(len(kids_seen), 4, f"keys seen: {sorted(kids_seen)}")
        self.assertLessEqual(most_keys, 4)
        # Left alone for a full period, nothing is left behind: the token holds exactly what is published.
        time.sleep(3.5)
        self.assertEqual(settled(self.picture), [], daemon.stderr)
        token = keyset_keys(token_keys(daemon.token_env))
        self.assertLessEqual(len(token), 3, token)
        self.assertEqual(halves_left(daemon.token_env), [], daemon.stderr)


class YoungHalfTest(unittest.TestCase):
    """Half a key pair younger than its grace (10 s for EC) may be another daemon's key in the making and
    is kept; once the grace is over it goes then, not at the next read of the token (every 30 s) or the
    next rotation (30 days here)."""

    def test_a_young_half_is_removed_when_its_grace_is_over(self):
        d = Daemon()
        self.addCleanup(d.cleanup)
        created = int(time.time())
        key_id = "c0ffee01"
        for args in (["--keypairgen", "--key-type", "EC:prime256v1", "--id", key_id,
                      "--label", f"hsmsignd/default/{created}/{created}"],
                     ["--delete-object", "--type", "privkey", "--id", key_id]):
            out = subprocess.run([PKCS11_TOOL, "--module", MODULE, "--token-label", TOKEN_LABEL, "--login",
                                  "--pin", PIN, *args], env=d.token_env, capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 0, out.stderr)

        def halves():
            return [k for k in keyset_keys(token_keys(d.token_env)).values() if not k.complete]

        d.start()
        self.assertEqual(len(halves()), 1, "a young half is kept: it may be another daemon's key in the making")
        while halves() and time.time() < created + 20:
            time.sleep(0.5)
        gone = time.time()
        self.assertEqual(halves(), [], d.stderr)
        self.assertGreaterEqual(gone - created, 10, "removed before its grace was over")
        self.assertIn("half a key pair", (d.workdir / "log" / "audit.jsonl").read_text())


class TwoDaemonsTest(unittest.TestCase):
    """Two daemons, same configuration and token, their own sockets, ports and state folders, racing."""

    RUN_SECONDS = 13.0  # four rotations of the 3s schedule
    LONGEST_DISAGREEMENT = 1.5  # each daemon makes a transition within a second of its time

    def setUp(self):
        self.first = prepare(Daemon(**SCHEDULE))
        self.addCleanup(self.first.cleanup)
        first_started = time.time()
        self.first.start()
        self.addCleanup(self.first.stop)
        # A daemon makes its transitions at the same fraction of a second as it started; start the second
        # at the first's fraction, so that both act in the same instant and every rotation is a race
        # (as it is, now and then, for two daemons started at random).
        time.sleep((first_started - time.time()) % 1.0)
        self.second_port = free_port()
        config = self.first.variant(
            "second.toml",
            server={"socket": "run/second-sign.sock", "admin_socket": "run/second-admin.sock"},
            jwks={"listen": f"127.0.0.1:{self.second_port}", "file": "run/second-jwks.json"},
            state={"dir": "second-state"},
            audit={"file": "log/second-audit.jsonl"})
        self.second_socket = self.first.workdir / "run" / "second-sign.sock"
        self.second, self.second_stderr = self.first.spawn(config)
        self.addCleanup(self.stop_second)
        deadline = time.monotonic() + 30
        while True:
            if self.second.poll() is not None:
                self.fail(f"the second daemon exited with {self.second.returncode}:\n{self.second_stderr.read_text()}")
            try:
                if self.get_second("/healthz").status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.fail(f"the second daemon did not start:\n{self.second_stderr.read_text()}")
            time.sleep(0.05)

    def stop_second(self):
        if self.second.poll() is None:
            self.second.terminate()
            try:
                self.second.wait(timeout=10)
            except Exception:
                self.second.kill()
                self.second.wait()

    def get_second(self, path):
        conn = UnixHTTPConnection(self.second_socket, timeout=5)
        try:
            return conn.call("GET", path)
        finally:
            conn.close()

    def alive(self):
        for name, process, stderr in (("first", self.first.process, self.first.stderr_path),
                                      ("second", self.second, self.second_stderr)):
            if process is None or process.poll() is not None:
                raise DaemonError(f"the {name} daemon exited ({process and process.returncode}):\n"
                                  f"{stderr.read_text(errors='replace')}")

    def views(self):
        """(keys, jwks) of both daemons."""
        self.alive()
        first_keys = self.first.get("/v1/keys").json
        second_keys = self.get_second("/v1/keys").json
        first_jwks = self.first.jwks_json()
        second_jwks, _ = fetch_jwks(self.second_port)
        return (first_keys, first_jwks), (second_keys, second_jwks)

    @staticmethod
    def summary(keys, jwks):
        states = keys_by_state(keys)
        return {"active": {ks: s.get("active", []) for ks, s in states.items()},
                "kids": sorted(k["kid"] for k in keys["keys"]), "jwks": jwks_kids(jwks)}

    def test_two_daemons_on_one_token_converge_and_only_one_next_key_survives(self):
        problems, transient_pairs = [], []
        state = {"disagree_since": None, "longest": 0.0, "samples": 0, "agreeing": 0}

        def sample():
            first, second = self.views()
            token = token_keys(self.first.token_env)
            now = time.time()
            state["samples"] += 1
            for name, (keys, jwks) in (("first", first), ("second", second)):
                for keyset, s in keys_by_state(keys).items():
                    if len(s.get("active", [])) != 1:
                        problems.append(f"{stamp()}: {name} daemon: not exactly one active key in {keyset}: {s}")
                complete = {k.kid for k in token.values() if k.complete}
                missing = set(jwks_kids(jwks)) - complete
                if missing and settled(lambda: self.jwks_not_on_token(name)):
                    problems.append(f"{stamp()}: the {name} daemon publishes keys the token does not hold: "
                                    f"{sorted(missing)}; token {token}")
            a, b = self.summary(*first), self.summary(*second)
            if a == b:
                state["agreeing"] += 1
                state["disagree_since"] = None
            else:
                since = state["disagree_since"] = state["disagree_since"] or time.monotonic()
                state["longest"] = max(state["longest"], time.monotonic() - since)
                if time.monotonic() - since > self.LONGEST_DISAGREEMENT:
                    problems.append(f"{stamp()}: the daemons disagree for {time.monotonic() - since:.1f}s: "
                                    f"first {a}, second {b}")
            halves = overdue_halves(keyset_keys(token), now)
            if halves and settled(self.halves_on_token):
                problems.append(f"{stamp()}: keys with only one half stay on the token: {halves}")
            for keyset in KEYSETS:
                pending = pending_on_token(token, keyset, now)
                if len(pending) > 1:
                    # Two daemons can both generate in the same instant; the loser must not survive.
                    time.sleep(0.5)
                    still = set(pending) & set(pending_on_token(token_keys(self.first.token_env), keyset))
                    transient_pairs.append(pending)
                    if len(still) > 1:
                        problems.append(f"{stamp()}: keyset {keyset}: {len(still)} pending keys survive a race: "
                                        f"{sorted(still)}")

        sampler = Sampler(sample, 0.2)
        sampler.start()
        time.sleep(self.RUN_SECONDS)
        sampler.stop()
        self.assertIsNone(sampler.error, repr(sampler.error))
        stderr = (f"first daemon:\n{self.first.stderr}\nsecond daemon:\n{self.second_stderr.read_text()}")
        self.assertEqual(problems[:5], [], f"{len(problems)} problems; transient double pending: {transient_pairs}\n"
                         + stderr)
        self.assertGreater(state["samples"], 20)

        # In the end they agree: same kids, same active key, same JWKS, and the token holds exactly those.
        def agreement():
            first, second = self.views()
            a, b = self.summary(*first), self.summary(*second)
            if a != b:
                return [f"first {a} != second {b}"]
            return invariant_violations(look(lambda: first[0], lambda: first[1], self.first.token_env))

        self.assertEqual(settled(agreement, attempts=8), [], stderr)
        keygens = sum(text.count("event=keygen keyset=default")
                      for text in (self.first.stderr, self.second_stderr.read_text()))
        self.assertGreaterEqual(keygens, 4, f"rotations happened: {keygens} keys generated\n{stderr}")
        if os.environ.get("HSMSIGND_E2E_VERBOSE"):
            print(f"\n{state}, transient double pending: {transient_pairs}\n{stderr}")

    def halves_on_token(self):
        halves = overdue_halves(keyset_keys(token_keys(self.first.token_env)), time.time())
        return [f"only one half: {halves}"] if halves else []

    def jwks_not_on_token(self, name):
        """[] when the named daemon's JWKS names only keys on the token, read in that order."""
        if name == "first":
            jwks = self.first.jwks_json()
        else:
            jwks, _ = fetch_jwks(self.second_port)
        complete = {k.kid for k in token_keys(self.first.token_env).values() if k.complete}
        missing = set(jwks_kids(jwks)) - complete
        return [f"not on the token: {sorted(missing)}"] if missing else []


if __name__ == "__main__":
    unittest.main()
