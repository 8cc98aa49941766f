"""Several hosts, one network token (issue 17; docs/several-hosts.md): three daemons, each in a network
namespace of its own made here (`ip netns add`, loopback only, every one's JWKS listener on the same
127.0.0.1:8080 of its own namespace), each with its own state, audit log and sockets, all on ONE SoftHSM
token behind ONE `p11-kit server` (p11-kit-client.so on a Unix socket: Unix sockets live in the filesystem,
so every namespace reaches it), and one redis-server (Unix socket) as the shared revocation store.

They converge on the same keys and JWK Set through a rotation made on one host and a scheduled rotation all
three race for; a host killed with SIGKILL and started again rejoins; every host's tokens verify against any
host's JWK Set (fetched inside that host's namespace); a revocation made on one host is refused by the
others. Every helper (p11-kit server, redis-server, daemons, the fetchers inside the namespaces) is started
here and stopped by pid; the namespaces are deleted at the end, even on failure."""
import calendar
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

from harness import ROOT_FLAG, Daemon, UnixHTTPConnection, client, decode_segment, hsmsignd_bin, verify_jwt
from rotation_support import prepare, token_objects
from test_redis import RedisServer
from tokens import SharedP11KitServer

HOSTS = ("a", "b", "c")
JWKS_PORT = 8080  # the same port in every namespace: each has a loopback of its own
MAX_AGE = 2       # [jwks] max_age, seconds; the daemons re-read the token every min(max_age, 30 s) = 2 s
PREPUBLISH = 6    # ≥ re-read interval + max_age = 4 s: every host publishes a new key before any signs with it
PERIOD = 20       # rotation_period: the scheduled rotation all three race for comes 14 s after an activation
RETIRE_AFTER = 8  # ≥ max_ttl 5 s + max_age 2 s
CONVERGE_BOUND = MAX_AGE + 2.0  # the re-read interval, plus the labels' whole seconds and two busy cores

FETCHER = r"""
import http.client, json, sys
for line in sys.stdin:
    port, path = json.loads(line)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", path)
        answer = conn.getresponse()
        out = {"status": answer.status, "headers": dict(answer.getheaders()), "body": answer.read().decode()}
        conn.close()
    except OSError as e:
        out = {"status": None, "error": repr(e)}
    print(json.dumps(out), flush=True)
"""


def ip(*args, check=True):
    out = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if check and out.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)} failed ({out.returncode}): {out.stderr}")
    return out


class Namespace:
    """A network namespace with its loopback up and nothing else, and a fetcher inside it: a Python process
    reading "[port, path]" lines and answering with what GET http://127.0.0.1:port/path gave, from inside."""

    def __init__(self, name):
        self.name = name
        self.fetcher = None
        ip("netns", "add", name)
        ip("netns", "exec", name, "ip", "link", "set", "lo", "up")

    def links(self):
        return [line.split(":")[1].strip() for line in ip("netns", "exec", self.name, "ip", "-o", "link").stdout.splitlines()]

    def get(self, port, path):
        if self.fetcher is None:
            self.fetcher = subprocess.Popen(["ip", "netns", "exec", self.name, "/usr/bin/python3", "-c", FETCHER],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.fetcher.stdin.write(json.dumps([port, path]) + "\n")
        self.fetcher.stdin.flush()
        line = self.fetcher.stdout.readline()
        if not line:
            raise AssertionError(f"the fetcher in {self.name} exited ({self.fetcher.poll()})")
        return json.loads(line)

    def stop_fetcher(self):
        if self.fetcher is not None and self.fetcher.poll() is None:
            self.fetcher.stdin.close()
            try:
                self.fetcher.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.fetcher.pid, 9)
                self.fetcher.wait()
        if self.fetcher is not None:
            self.fetcher.stdout.close()
        self.fetcher = None

    def delete(self):
        self.stop_fetcher()
        ip("netns", "delete", self.name, check=False)


class Host(Daemon):
    """hsmsignd run as `ip netns exec NS hsmsignd ...` (ip execs it: the pid is the daemon's), with its JWKS
    listener reachable only inside NS."""

    def __init__(self, name, namespace, **kw):
        super().__init__(**kw)
        self.name = name
        self.namespace = namespace
        self.port = JWKS_PORT

    def spawn(self, config=None):
        self.starts += 1
        stderr_path = self.workdir / f"stderr.{self.starts}.log"
        with open(stderr_path, "wb") as err:
            process = subprocess.Popen(["ip", "netns", "exec", self.namespace.name, hsmsignd_bin(), "--config",
                                        str(config or self.config_path), *ROOT_FLAG], env=self.token_env,
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        return process, stderr_path

    def jwks(self):
        """The JWK Set from the listener, fetched inside the namespace: ({kid: jwk}, ETag)."""
        answer = self.namespace.get(JWKS_PORT, "/.well-known/jwks.json")
        if answer["status"] != 200:
            raise AssertionError(f"host {self.name}: GET /.well-known/jwks.json inside {self.namespace.name}: {answer}")
        return {k["kid"]: k for k in json.loads(answer["body"])["keys"]}, answer["headers"].get("ETag")

    def jwks_text(self):
        return json.dumps({"keys": list(self.jwks()[0].values())})

    def keys(self):
        return self.get("/v1/keys").json["keys"]

    def admin(self, path, body):
        conn = UnixHTTPConnection(self.workdir / "run" / "admin.sock", timeout=10)
        try:
            return conn.call("POST", path, body)
        finally:
            conn.close()

    def audit(self):
        path = self.workdir / "log" / "audit.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def wait_for(condition, what, timeout, step=0.05):
    start = time.monotonic()
    while True:
        value = condition()
        if value:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(step)


class SeveralHostsTest(unittest.TestCase):
    """The tests run in the order of their names, on one set of hosts, and take about 35 s together."""

    @classmethod
    def setUpClass(cls):
        cls.measured = {}
        cls.tmp = Path(tempfile.mkdtemp(prefix="e2e-hosts-"))
        cls.addClassCleanup(shutil.rmtree, cls.tmp, ignore_errors=True)
        prefix = f"hsmsignd-e2e-{os.getpid()}-"
        cls.namespaces = {}
        for name in HOSTS:
            cls.namespaces[name] = Namespace(prefix + name)
            cls.addClassCleanup(cls.namespaces[name].delete)  # runs after the daemons are gone (cleanups are LIFO)
        cls.hsm = SharedP11KitServer(cls.tmp / "hsm")
        cls.addClassCleanup(cls.hsm.stop)
        cls.hsm.create()
        cls.redis = RedisServer(cls.tmp / "redis")
        cls.addClassCleanup(cls.redis.stop)
        cls.redis.start()
        cls.hosts = {}
        for name in HOSTS:
            host = Host(name, cls.namespaces[name], token_factory=cls.hsm.client_factory,
                        keysets=[{"name": "default", "algorithm": "ES256", "rotation_period": f"{PERIOD}s",
                                  "prepublish": f"{PREPUBLISH}s", "retire_after": f"{RETIRE_AFTER}s"}],
                        clients=[client(keysets=["default"], max_ttl="5s", default_ttl="5s")],
                        token={"signers": 1},
                        jwks={"listen": f"127.0.0.1:{JWKS_PORT}", "max_age": f"{MAX_AGE}s"},
                        revocation={"redis": f"unix:{cls.redis.socket}"})
            cls.addClassCleanup(host.cleanup)  # SIGKILL by pid if still running, then its folder
            cls.addClassCleanup(host.stop)     # SIGTERM by pid first
            cls.hosts[name] = prepare(host)
            started = time.monotonic()
            host.start()
            cls.measured[f"start {name}"] = time.monotonic() - started

    @classmethod
    def tearDownClass(cls):
        print("\n  measured: " + ", ".join(f"{k} {v:.2f} s" if isinstance(v, float) else f"{k} {v}"
                                          for k, v in cls.measured.items()))

    # --- helpers ---
    def key_sets(self):
        return {name: host.jwks()[0] for name, host in self.hosts.items()}

    def converged(self):
        sets = self.key_sets()
        first = sets["a"]
        return first if all(s == first for s in sets.values()) else None

    def issue(self, host, sub="alice"):
        answer = host.post("/v1/jwt", {"sub": sub})
        self.assertEqual(answer.status, 200, f"host {host.name}: {answer}")
        return answer.json["jwt"]

    def default_keys(self, host, state):
        return [k["kid"] for k in host.keys() if k["keyset"] == "default" and k["state"] == state]

    # --- the tests ---
    def test_1_each_host_is_alone_on_its_loopback_and_all_share_one_token(self):
        for name, host in self.hosts.items():
            self.assertEqual(self.namespaces[name].links(), ["lo"], f"host {name}'s namespace has only lo")
            # ip netns exec replaced itself with the daemon: stopping by this pid stops the daemon.
            self.assertEqual(Path(f"/proc/{host.process.pid}/comm").read_text().strip(), "hsmsignd")
            self.assertNotIn("SOFTHSM2_CONF", host.token_env, "the daemons reach the token only through p11-kit")
            self.assertEqual(host.config["token"]["module"], "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so")
        # Three listeners on the same 127.0.0.1:8080 could only all bind in three namespaces.
        wait_for(self.converged, "the three JWK Sets agree after start", timeout=CONVERGE_BOUND)
        keys = self.converged()
        self.assertEqual(len(keys), 1, "one key: the first host made it, the others found it on the token")
        actives = {name: self.default_keys(host, "active") for name, host in self.hosts.items()}
        self.assertEqual(len({tuple(v) for v in actives.values()}), 1, actives)
        keygens = {name: [l for l in host.audit() if l["event"] == "keygen" and l["keyset"] == "default"]
                   for name, host in self.hosts.items()}
        self.assertEqual(len(keygens["a"]), 1, keygens)
        self.assertEqual(keygens["b"] + keygens["c"], [], "B and C started on A's key")
        audit_keys = {name: [l for l in host.audit() if l["event"] == "keygen" and l["keyset"] == "audit"]
                      for name, host in self.hosts.items()}
        self.assertEqual((len(audit_keys["a"]), audit_keys["b"], audit_keys["c"]), (1, [], []),
                         "one audit key on the token, made by A: every host signs its checkpoints with it")

    def test_2_a_rotation_on_one_host_is_published_by_the_others_within_the_reread_interval(self):
        a = self.hosts["a"]
        before = set(self.converged() or {})
        rotated = time.monotonic()
        out = a.ctl("rotate", "default")
        self.assertEqual(out.returncode, 0, out.stderr)
        kid = out.stdout.strip().split()[-1]
        self.assertNotIn(kid, before)
        self.assertIn(kid, a.jwks()[0], "A publishes its new key at once")
        answered = time.monotonic()
        # From A's answer to each host's first JWK Set holding the key (the timeout lets a slow host be
        # measured rather than only failed).
        seen = {}
        for name in ("b", "c"):
            wait_for(lambda: kid in self.hosts[name].jwks()[0], f"host {name} publishes {kid}",
                     timeout=CONVERGE_BOUND + 30)
            seen[name] = round(time.monotonic() - answered, 2)
        self.measured["rotate on A (hsmsignctl) took"] = answered - rotated
        self.measured["rotation on A published by B, C after"] = max(seen.values())
        self.assertLessEqual(max(seen.values()), CONVERGE_BOUND, f"seen after {seen} s (bound {CONVERGE_BOUND} s)")
        for name in ("b", "c"):
            self.assertEqual(self.default_keys(self.hosts[name], "pending"), [kid], f"host {name}: the key is pending")
        self.assertTrue(self.converged(), "the three JWK Sets are the same")
        etags = {host.jwks()[1] for host in self.hosts.values()}
        self.assertEqual(len(etags), 1, f"one document, one ETag everywhere: {etags}")
        # Every host signs with it from its activation on (all three wake at the instant in its label).
        activates = next(k for k in a.keys() if k["kid"] == kid)["activates"]
        wait_for(lambda: all(self.default_keys(h, "active") == [kid] for h in self.hosts.values()),
                 f"every host signs with {kid} (activates {activates})", timeout=PREPUBLISH + 3)
        for host in self.hosts.values():
            header = decode_segment(self.issue(host).split(".")[0])
            self.assertEqual(header["kid"], kid, f"host {host.name}")
        type(self).rotated_kid = kid

    def test_3_tokens_from_every_host_verify_against_every_hosts_jwks(self):
        tokens = {name: self.issue(host, sub=f"user-{name}") for name, host in self.hosts.items()}
        sets = {name: host.jwks_text() for name, host in self.hosts.items()}
        for issued_by, token in tokens.items():
            for fetched_from, jwks in sets.items():
                with self.subTest(issued_by=issued_by, jwks_of=fetched_from):
                    header, claims = verify_jwt(token, jwks, "ES256")
                    self.assertEqual(claims["sub"], f"user-{issued_by}")
            for name, host in self.hosts.items():  # and each daemon's own check of it
                verdict = host.post("/v1/verify", {"jwt": token}).json
                self.assertTrue(verdict["valid"], f"issued by {issued_by}, checked by {name}: {verdict}")

    def test_4_a_revocation_on_one_host_is_refused_by_the_others(self):
        token = self.issue(self.hosts["b"], sub="mallory")
        for host in self.hosts.values():
            self.assertTrue(host.post("/v1/verify", {"jwt": token}).json["valid"])
        started = time.monotonic()
        out = self.hosts["a"].ctl("revoke", token)
        self.assertEqual(out.returncode, 0, out.stderr)
        for name in ("b", "c"):
            wait_for(lambda: self.hosts[name].post("/v1/verify", {"jwt": token}).json.get("reason") == "revoked",
                     f"host {name} refuses the token revoked on A", timeout=2, step=0.01)
        self.measured["revocation on A refused by B, C within"] = time.monotonic() - started
        self.assertEqual(self.hosts["a"].post("/v1/verify", {"jwt": token}).json["reason"], "revoked")

    def test_5_a_host_killed_and_started_again_rejoins(self):
        c = self.hosts["c"]
        pid = c.process.pid
        c.kill()  # SIGKILL, by pid
        self.assertFalse(Path(f"/proc/{pid}").exists(), "the daemon's pid is gone")
        # The others go on signing meanwhile.
        for name in ("a", "b"):
            self.issue(self.hosts[name])
        started = time.monotonic()
        c.start()
        self.measured["restart of C: healthz 200 after"] = time.monotonic() - started
        wait_for(self.converged, "C's JWK Set agrees with A's and B's", timeout=CONVERGE_BOUND)
        self.measured["restart of C: same JWK Set after"] = time.monotonic() - started
        self.assertEqual(self.default_keys(c, "active"), self.default_keys(self.hosts["a"], "active"))
        token = self.issue(c, sub="after-restart")
        for host in self.hosts.values():
            verify_jwt(token, host.jwks_text(), "ES256")
        self.assertEqual(c.post("/v1/verify", {"jwt": self.issue(self.hosts["a"])}).json["valid"], True)
        self.assertEqual([l for l in c.audit() if l["event"] == "keygen" and l.get("keyset") == "default"], [],
                         "C never made a key of its own: it rejoined on the token's keys")

    def test_6_scheduled_rotations_at_the_same_instant_leave_one_pending_key(self):
        a = self.hosts["a"]
        active = next(k for k in a.keys() if k["keyset"] == "default" and k["state"] == "active")
        # Every host wakes at the same instant from the same label: activates + period − prepublish.
        due = rfc3339(active["activates"]) + PERIOD - PREPUBLISH
        wait = due - time.time()
        self.assertLess(wait, 25, "the scheduled rotation is due soon")
        time.sleep(max(0.0, wait) + 2.5)  # the race, the 250 ms relist, the 1 s settle, one re-read
        wait_for(self.converged, "the JWK Sets agree after the scheduled rotation", timeout=CONVERGE_BOUND)
        pending = {name: self.default_keys(host, "pending") for name, host in self.hosts.items()}
        self.assertEqual(len(pending["a"]), 1, pending)
        self.assertTrue(all(p == pending["a"] for p in pending.values()), pending)
        # On the token itself (pkcs11-tool on the SoftHSM token behind the server): one pending key pair. A
        # loser's half left by two hosts destroying it at once is removed after the orphan grace (10 s).
        def pending_on_token():
            objects = token_objects(self.hsm.token.softhsm_env())
            pending = [(o["class"], o["id"]) for o in objects if o["label"].startswith("hsmsignd/default/")
                       and int(o["label"].split("/")[2]) == due + PREPUBLISH]
            if not hasattr(self, "first_objects"):
                type(self).first_objects = [(o["class"], o["id"][:8], o["label"]) for o in objects]
            self.last_objects = [(o["class"], o["id"][:8], o["label"]) for o in objects]
            return len(pending) == 2 and {c for c, _ in pending} == {"private", "public"} and len({i for _, i in pending}) == 1
        try:
            self.measured["token holds one pending key pair after the race + 2.5 s, within"] = wait_for(
                pending_on_token, "one pending key pair on the token", timeout=12, step=0.5)
        except AssertionError:
            raise AssertionError(f"the token holds {self.last_objects}; first {self.first_objects}")
        # Who generated: a race if more than one host did; the planner destroyed every key but one.
        made = {name: [l["kid"] for l in host.audit() if l["event"] == "keygen" and l["keyset"] == "default"
                       and int(l["label"].split("/")[2]) == due + PREPUBLISH]
                for name, host in self.hosts.items()}
        generators = [name for name, kids in made.items() if kids]
        self.measured["hosts that generated the scheduled key"] = ",".join(generators) or "none"
        self.assertTrue(generators, made)
        kept = pending["a"][0]
        losers = [kid for kids in made.values() for kid in kids if kid != kept]
        published = self.converged() or {}
        self.assertFalse([kid for kid in losers if kid in published], "no race loser is published")
        # Who destroyed them differs from run to run (one host, or one half each: lifecycle.md).
        self.measured["race losers"] = len(losers)

    def test_7_a_key_retired_on_one_host_stops_signing_on_the_others_at_their_first_miss(self):
        a, b = self.hosts["a"], self.hosts["b"]
        old = self.default_keys(a, "active")[0]
        self.assertEqual(self.default_keys(b, "active"), [old])
        out = a.ctl("retire", old)
        self.assertEqual(out.returncode, 0, out.stderr)
        retired = time.monotonic()
        self.assertNotIn(old, a.jwks()[0], "A dropped it at once")
        # B goes on with the key it knows until its next look at the token: what does it answer meanwhile?
        answers = []
        while time.monotonic() - retired < CONVERGE_BOUND + 30:
            answer = b.post("/v1/jwt", {"sub": "after-retire"})
            kid = decode_segment(answer.json["jwt"].split(".")[0])["kid"] if answer.status == 200 else None
            answers.append((round(time.monotonic() - retired, 2), answer.status, kid))
            if kid is not None and kid != old:
                break
            time.sleep(0.02)
        signed_with_old = [t for t, status, kid in answers if kid == old]
        refused = [(t, status) for t, status, kid in answers if status != 200]
        self.measured["retire on A: B signs with the new key after"] = answers[-1][0]
        self.measured["retire on A: B's answers meanwhile"] = (f"{len(signed_with_old)} signed with the retired key, "
                                                               f"{len(refused)} refused {sorted({s for _, s in refused})}")
        self.assertNotEqual(answers[-1][2], old)
        self.assertEqual(signed_with_old, [], "B never signs with the key A retired and destroyed")
        # B's first miss makes it read the token at once: a refusal or two, not an interval's worth.
        self.assertLessEqual(len(refused), 3, answers)
        self.assertLessEqual(answers[-1][0], 2.0, answers)
        wait_for(self.converged, "the JWK Sets agree after the retirement", timeout=CONVERGE_BOUND)
        self.assertNotIn(old, self.converged())

    def test_8_each_host_keeps_its_own_audit_chain_signed_by_the_one_audit_key(self):
        heads, keys = {}, {}
        for name, host in self.hosts.items():
            out = host.ctl("checkpoint")
            self.assertEqual(out.returncode, 0, out.stderr)
            log = host.workdir / "log" / "audit.jsonl"
            out = host.ctl("audit", "verify", str(log))
            self.assertEqual(out.returncode, 0, f"host {name}: {out.stdout}{out.stderr}")
            self.assertIn("signed checkpoint", out.stdout)
            keys[name] = json.loads(Path(f"{log}.key.jwk").read_text())["kid"]
            lines = host.audit()
            self.assertEqual(lines[0]["seq"], 1)
            heads[name] = lines[-1]["prev"]
        self.assertEqual(len(set(keys.values())), 1, f"one audit key for all hosts: {keys}")
        self.assertEqual(len(set(heads.values())), 3, "three chains, one per host")


def rfc3339(text):
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


if __name__ == "__main__":
    unittest.main()
