"""Revocation shared by several daemons on one Redis: a real redis-server (Debian's) started by each test on
a Unix socket in its throw-away folder and stopped by pid; two daemons on one token, as two hosts of one HSM;
a verifier hsmsignd did not write (Node: jose and node-redis) reading the documented keys; Redis killed
under load and brought back."""
import json
import os
import signal
import subprocess
import threading
import time
import unittest
from pathlib import Path

from harness import Daemon, UnixHTTPConnection, free_port, verify_jwt
from test_status_list import bit, fetch, node_verify, status_of

REDIS_SERVER = "/usr/bin/redis-server"


class RedisServer:
    """redis-server on DIR/redis.sock, with an append-only file fsynced at every write (what the docs ask of
    a Redis that holds revocations); start() again on the same DIR after kill() keeps what it had."""

    def __init__(self, directory, password=None, port=0):
        self.port = port  # 0: the Unix socket only
        self.dir = Path(directory)
        self.dir.mkdir(mode=0o700, exist_ok=True)
        self.socket = self.dir / "redis.sock"
        self.password = password
        self.process = None

    def start(self):
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
                "--dir", str(self.dir), "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                "--daemonize", "no"]
        if self.password:
            args += ["--requirepass", self.password]
        with open(self.dir / "redis.log", "ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while self.cli("PING").strip() != "PONG":
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"redis-server did not start: {(self.dir / 'redis.log').read_text()}")
            time.sleep(0.05)
        return self

    def cli(self, *command):
        auth = ["-a", self.password, "--no-auth-warning"] if self.password else []
        out = subprocess.run(["redis-cli", "-s", str(self.socket), *auth, *command], capture_output=True, text=True,
                             timeout=10)
        return out.stdout

    def kill(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


class SecondHost:
    """Another daemon on the same token and the same Redis: its own sockets, state, audit log and listener."""

    def __init__(self, first, name="b", port=None):
        self.first = first
        self.port = port or free_port()
        self.config = first.variant(
            f"{name}.toml",
            server={"socket": f"run/{name}-sign.sock", "admin_socket": f"run/{name}-admin.sock"},
            jwks={"listen": f"127.0.0.1:{self.port}", "file": f"run/{name}-jwks.json"},
            state={"dir": f"{name}-state"},
            audit={"file": f"log/{name}-audit.jsonl"})
        self.socket = first.workdir / "run" / f"{name}-sign.sock"
        self.process, self.stderr = first.spawn(self.config)
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"the second daemon exited: {self.stderr.read_text()}")
            try:
                if self.post("/healthz", None, "GET")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the second daemon did not start: {self.stderr.read_text()}")
            time.sleep(0.05)

    def post(self, path, body, method="POST"):
        conn = UnixHTTPConnection(self.socket, timeout=10)
        try:
            answer = conn.call(method, path, body)
            return answer.status, answer.json
        finally:
            conn.close()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def wait_for(condition, what, timeout=10.0, step=0.02):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(step)


def metric(daemon, name):
    for line in daemon.get("/metrics").body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


class RedisTestCase(unittest.TestCase):
    REVOCATION = {}

    def setUp(self):
        self.daemon = Daemon()
        self.addCleanup(self.daemon.cleanup)
        self.redis = RedisServer(self.daemon.workdir / "redis", password=getattr(self, "PASSWORD", None))
        self.addCleanup(self.redis.stop)
        self.redis.start()
        self.daemon.config["revocation"] = {"redis": f"unix:{self.redis.socket}", **self.REVOCATION}
        self.daemon.start()
        self.addCleanup(self.daemon.stop)

    def second_host(self, port=None):
        host = SecondHost(self.daemon, port=port)
        self.addCleanup(host.stop)
        return host

    def token(self, sub="alice"):
        answer = self.daemon.post("/v1/jwt", {"sub": sub})
        self.assertEqual(answer.status, 200, answer)
        return answer.json["jwt"]

    def admin(self, path, body):
        conn = UnixHTTPConnection(self.daemon.workdir / "run" / "admin.sock", timeout=10)
        try:
            return conn.call("POST", path, body)
        finally:
            conn.close()

    def audit_lines(self):
        return [json.loads(l) for l in (self.daemon.workdir / "log" / "audit.jsonl").read_text().splitlines()]


class SharedRevocationTest(RedisTestCase):
    def test_a_token_revoked_on_one_host_is_refused_by_the_other_within_a_second(self):
        b = self.second_host()
        token = self.token()
        self.assertTrue(b.post("/v1/verify", {"jwt": token})[1]["valid"])
        start = time.monotonic()
        answer = self.daemon.post("/v1/revoke", {"jwt": token})
        self.assertEqual(answer.status, 200, answer)
        wait_for(lambda: b.post("/v1/verify", {"jwt": token})[1].get("reason") == "revoked", "B refuses it", timeout=1.0)
        print(f"\n  revoked on A, refused by B after {(time.monotonic() - start) * 1000:.1f} ms", end=" ")
        # And by the documented key, for verifiers that are not hsmsignd.
        claims = verify_jwt(token, self.daemon.jwks_json(), "ES256")[1]
        self.assertEqual(self.redis.cli("EXISTS", f"hsmsignd:revoked:{claims['iss']}:{claims['jti']}").strip(), "1")
        self.assertEqual(self.redis.cli("GET", f"hsmsignd:revoked:{claims['iss']}:{claims['jti']}").strip(), str(claims["exp"]))
        ttl = int(self.redis.cli("TTL", f"hsmsignd:revoked:{claims['iss']}:{claims['jti']}"))
        self.assertLessEqual(abs(ttl - (claims["exp"] + 10 - time.time())), 3)

    def test_an_independent_verifier_reads_the_redis_keys(self):
        good, bad, alice_before = self.token("good"), self.token("bad"), self.token("alice")
        self.assertEqual(self.daemon.post("/v1/revoke", {"jwt": bad}).status, 200)
        redis = ["--redis", str(self.redis.socket)]
        self.assertTrue(node_verify(self.daemon, good, *redis)["valid"])
        self.assertEqual(node_verify(self.daemon, bad, *redis), {"valid": False, "reason": "revoked", "by": "redis"})
        # "Log alice out everywhere": the subject's not-before, which the verifier reads too.
        time.sleep(1.05)  # iat has whole seconds: a token of this second is not "before"
        answer = self.admin("/v1/admin/revoke", {"sub": "alice"})
        self.assertEqual(answer.status, 200, answer)
        self.assertEqual(node_verify(self.daemon, alice_before, *redis),
                         {"valid": False, "reason": "revoked", "by": "redis-notbefore"})
        self.assertTrue(node_verify(self.daemon, self.token("alice"), *redis)["valid"])
        self.assertFalse(node_verify(self.daemon, good, "--redis", str(self.redis.socket), "--aud", "nobody")["valid"])

    def test_every_revocation_is_published_on_the_documented_channel(self):
        listener = subprocess.Popen(["redis-cli", "-s", str(self.redis.socket), "--csv", "SUBSCRIBE", "hsmsignd:revocations"],
                                    stdout=subprocess.PIPE, text=True)
        self.addCleanup(lambda: (listener.kill(), listener.wait(), listener.stdout.close()))
        wait_for(lambda: "subscribe" in listener.stdout.readline(), "subscribed")
        self.assertEqual(self.daemon.post("/v1/revoke", {"jti": "published-1", "exp": int(time.time()) + 60}).status, 200)
        line = listener.stdout.readline()
        message = json.loads(json.loads("[" + line + "]")[2])
        self.assertEqual((message["kind"], message["name"], message["iss"]), ("jti", "published-1", "https://auth.example.com"))

    def test_revocations_survive_a_restart_and_a_kill_of_the_daemon(self):
        token = self.token()
        self.assertEqual(self.daemon.post("/v1/revoke", {"jwt": token}).status, 200)
        self.daemon.kill()
        self.daemon.start()
        self.assertEqual(self.daemon.post("/v1/verify", {"jwt": token}).json["reason"], "revoked")


class OutageTest(RedisTestCase):
    def test_kill_redis_under_load_nothing_acknowledged_is_lost_and_it_recovers_by_itself(self):
        b = self.second_host()
        revoked_token, fine_token = self.token("revoked"), self.token("fine")
        self.assertEqual(self.daemon.post("/v1/revoke", {"jwt": revoked_token}).status, 200)
        acknowledged, refused, other = [], [], []
        stop = threading.Event()

        def flood(worker):
            n = 0
            while not stop.is_set():
                jti = f"flood-{worker}-{n}"
                n += 1
                try:
                    answer = self.daemon.post("/v1/revoke", {"jti": jti, "exp": int(time.time()) + 120}, timeout=10)
                except OSError as e:
                    other.append(repr(e))
                    continue
                (acknowledged if answer.status == 200 else refused if answer.status == 503 else other).append((jti, answer))

        workers = [threading.Thread(target=flood, args=(w,)) for w in range(4)]
        for w in workers:
            w.start()
        try:
            wait_for(lambda: len(acknowledged) >= 50, "revocations acknowledged before the kill")
            self.redis.kill()
            wait_for(lambda: self.daemon.get("/healthz").json.get("status") == "degraded", "/healthz degraded")
            wait_for(lambda: len(refused) >= 5, "503s while Redis is down")
            # Fail closed: a token nobody revoked is not accepted while the store cannot say so...
            verdict = self.daemon.post("/v1/verify", {"jwt": fine_token}).json
            self.assertEqual(verdict["reason"], "revocation_unavailable", verdict)
            # ...and a token known to be revoked stays refused.
            self.assertEqual(self.daemon.post("/v1/verify", {"jwt": revoked_token}).json["reason"], "revoked")
            self.assertEqual(metric(self.daemon, "hsmsignd_revocation_store_up"), 0)
            self.redis.start()
            wait_for(lambda: self.daemon.get("/healthz").json == {"status": "ok"}, "/healthz ok again", timeout=15)
            wait_for(lambda: len(acknowledged) >= 100, "revocations acknowledged after the restart")
        finally:
            stop.set()
            for w in workers:
                w.join()
        self.assertFalse(other, other[:3])
        self.assertTrue(all(a.json["revoked"] for _, a in acknowledged))
        missing = [jti for jti, _ in acknowledged
                   if self.redis.cli("EXISTS", f"hsmsignd:revoked:https://auth.example.com:{jti}").strip() != "1"]
        self.assertEqual(missing, [], f"{len(missing)} of {len(acknowledged)} acknowledged revocations are not in Redis")
        self.assertTrue(all("revocation" in a.json["message"] for _, a in refused), refused[:1])
        print(f"\n  {len(acknowledged)} acknowledged (all in Redis after its kill -9), {len(refused)} refused 503 during the outage",
              end=" ")
        self.assertEqual(self.daemon.post("/v1/verify", {"jwt": fine_token}).json["valid"], True)
        self.assertEqual(metric(self.daemon, "hsmsignd_revocation_store_up"), 1)
        self.assertEqual(metric(self.daemon, "hsmsignd_revocation_store_outages_total"), 1)
        # The other host recovered too, and sees what was revoked through the outage.
        wait_for(lambda: b.post("/v1/verify", {"jwt": fine_token})[1].get("valid") is True, "B serving again", timeout=15)
        self.assertEqual(b.post("/v1/verify", {"jwt": revoked_token})[1]["reason"], "revoked")
        errors = [l for l in self.audit_lines() if l["event"] == "error" and l.get("store") == "revocation"]
        self.assertEqual(len(errors), 1, errors)

    def test_a_daemon_started_while_redis_is_down_fails_closed_then_recovers(self):
        token = self.token()
        self.daemon.stop()
        self.redis.kill()
        self.daemon.start()
        self.assertEqual(self.daemon.get("/healthz").json["status"], "degraded")
        self.assertEqual(self.daemon.post("/v1/verify", {"jwt": token}).json["reason"], "revocation_unavailable")
        self.assertEqual(self.daemon.post("/v1/revoke", {"jwt": token}).status, 503)
        self.assertEqual(self.daemon.post("/v1/jwt", {"sub": "still-signing"}).status, 200)
        self.redis.start()
        wait_for(lambda: self.daemon.post("/v1/verify", {"jwt": token}).json.get("valid") is True, "verify works again",
                 timeout=15)


class FailOpenTest(RedisTestCase):
    REVOCATION = {"fail_open_for": "30s"}

    def test_within_fail_open_for_the_last_known_set_answers(self):
        revoked, fine = self.token("r"), self.token("f")
        self.assertEqual(self.daemon.post("/v1/revoke", {"jwt": revoked}).status, 200)
        self.redis.kill()
        wait_for(lambda: self.daemon.get("/healthz").json.get("status") == "degraded", "/healthz degraded")
        self.assertTrue(self.daemon.post("/v1/verify", {"jwt": fine}).json["valid"])
        self.assertEqual(self.daemon.post("/v1/verify", {"jwt": revoked}).json["reason"], "revoked")
        self.assertEqual(self.daemon.post("/v1/revoke", {"jwt": fine}).status, 503)  # never acknowledged unstored


class StartedWhileRedisIsDownTest(RedisTestCase):
    REVOCATION = {"fail_open_for": "1h", "status_list": True}

    def test_nothing_is_trusted_before_the_store_was_read(self):
        token = self.token()
        self.assertEqual(self.daemon.post("/v1/revoke", {"jwt": token}).status, 200)
        uri, _ = status_of(verify_jwt(token, self.daemon.jwks_json(), "ES256")[1])
        self.daemon.stop()
        self.redis.kill()
        self.daemon.start()
        # Fail-open would answer from the last known set, and this daemon knows none yet.
        self.assertEqual(self.daemon.post("/v1/verify", {"jwt": token}).json["reason"], "revocation_unavailable")
        # Its Status List would show the revoked token's bit as 0.
        self.assertEqual(fetch(uri)[0], 503)
        self.redis.start()
        wait_for(lambda: self.daemon.post("/v1/verify", {"jwt": token}).json.get("reason") == "revoked",
                 "the revocation read back", timeout=15)
        self.assertEqual(fetch(uri)[0], 200)


class PasswordTest(RedisTestCase):
    PASSWORD = "e2e-throwaway-redis-password"

    def setUp(self):
        self.daemon = Daemon()
        self.addCleanup(self.daemon.cleanup)
        self.redis = RedisServer(self.daemon.workdir / "redis", password=self.PASSWORD)
        self.addCleanup(self.redis.stop)
        self.redis.start()

    def start_with(self, password):
        (self.daemon.workdir / "redis-password").write_text(password + "\n")
        self.daemon.config["revocation"] = {"redis": f"unix:{self.redis.socket}", "redis_password_file": "redis-password"}
        self.daemon.start()
        self.addCleanup(self.daemon.stop)

    def test_the_password_file_authenticates(self):
        self.start_with(self.PASSWORD)
        self.assertEqual(self.daemon.get("/healthz").json, {"status": "ok"})
        self.assertEqual(self.daemon.post("/v1/revoke", {"jti": "with-auth", "exp": int(time.time()) + 60}).status, 200)

    def test_a_wrong_password_is_an_outage_that_never_shows_the_password(self):
        self.start_with("not-the-password")
        health = self.daemon.get("/healthz").json
        self.assertEqual(health["status"], "degraded", health)
        for text in (json.dumps(health), self.daemon.stderr, (self.daemon.workdir / "log" / "audit.jsonl").read_text()):
            self.assertNotIn("not-the-password", text)


class TcpTest(unittest.TestCase):
    def test_a_redis_on_a_loopback_port(self):
        daemon = Daemon()
        self.addCleanup(daemon.cleanup)
        port = free_port()
        redis = RedisServer(daemon.workdir / "redis", port=port)
        self.addCleanup(redis.stop)
        redis.start()
        daemon.config["revocation"] = {"redis": f"tcp://127.0.0.1:{port}"}
        daemon.start()
        self.addCleanup(daemon.stop)
        self.assertEqual(daemon.get("/healthz").json, {"status": "ok"})
        token = daemon.post("/v1/jwt", {"sub": "over-tcp"}).json["jwt"]
        self.assertEqual(daemon.post("/v1/revoke", {"jwt": token}).status, 200)
        jti = verify_jwt(token, daemon.jwks_json(), "ES256")[1]["jti"]
        self.assertEqual(redis.cli("EXISTS", f"hsmsignd:revoked:https://auth.example.com:{jti}").strip(), "1")


class StatusListOnRedisTest(RedisTestCase):
    REVOCATION = {"status_list": True}

    def test_a_token_of_one_host_revoked_on_the_other_sets_its_bit_on_its_own_list(self):
        b = self.second_host()
        status, issued = b.post("/v1/jwt", {"sub": "on-b"})
        self.assertEqual(status, 200, issued)
        uri, idx = status_of(verify_jwt(issued["jwt"], self.daemon.jwks_json(), "ES256")[1])
        self.assertTrue(uri.startswith(f"http://127.0.0.1:{b.port}/statuslists/"), uri)
        self.assertEqual(self.daemon.post("/v1/revoke", {"jwt": issued["jwt"]}).status, 200)

        def bit_on_b():
            code, _, body = fetch(uri)
            return code == 200 and bit(verify_jwt(body, self.daemon.jwks_json(), "ES256")[1], idx) == 1

        wait_for(bit_on_b, "the bit on B's own list", timeout=5, step=0.2)
        # B restarted reads the bit back from Redis.
        b.stop()
        b = self.second_host(port=b.port)  # the same host: its lists keep their URIs
        wait_for(bit_on_b, "the bit after B restarted", timeout=5, step=0.2)


if __name__ == "__main__":
    unittest.main()
