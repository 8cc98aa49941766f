"""The Token Status List (draft-ietf-oauth-status-list): every JWT names its entry, the JWKS listener serves
each list as a Status List Token signed by the keyset's key, a revoked token's bit is set there, and
verifiers hsmsignd did not write (python3-jwcrypto with zlib, and Node's jose with @sd-jwt/jwt-status-list)
read it so."""
import json
import subprocess
import time
import unittest
import urllib.error
import urllib.request
import zlib

from harness import (ISSUER, DaemonTestCase, Daemon, SOURCE_ROOT, b64url, b64url_decode, client, decode_segment,
                     verify_jwt)

NODE_VERIFIER = SOURCE_ROOT / "tests" / "e2e" / "node" / "verify_token.mjs"
STATUS_LIST = {"status_list": True, "status_list_ttl": "30s"}


def fetch(uri, headers=None):
    """(status, headers, body) of a GET on the JWKS listener."""
    request = urllib.request.Request(uri, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def status_of(claims):
    entry = claims["status"]["status_list"]
    return entry["uri"], entry["idx"]


def bit(list_token_payload, idx):
    """The token's status, read with zlib and the draft's bit order (least significant bit first)."""
    status_list = list_token_payload["status_list"]
    assert status_list["bits"] == 1, status_list
    raw = zlib.decompress(b64url_decode(status_list["lst"]))
    assert idx // 8 < len(raw), f"index {idx} is beyond the list ({len(raw) * 8} entries)"
    return raw[idx // 8] >> (idx % 8) & 1


def node_verify(daemon, token, *extra):
    out = subprocess.run(["node", str(NODE_VERIFIER), "--jwks", f"http://127.0.0.1:{daemon.port}/.well-known/jwks.json",
                          "--token", token, *extra], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise AssertionError(f"the Node verifier failed ({out.returncode}): {out.stderr}")
    return json.loads(out.stdout)


class StatusListTest(DaemonTestCase):
    DAEMON = dict(revocation=STATUS_LIST)

    def issue(self, sub="alice"):
        answer = self.daemon.post("/v1/jwt", {"sub": sub})
        self.assertEqual(answer.status, 200, answer)
        _, claims = verify_jwt(answer.json["jwt"], self.daemon.jwks_json(), "ES256")
        return answer.json["jwt"], claims

    def list_token(self, uri):
        """The Status List Token at `uri`, checked by jwcrypto against the JWKS: (header, payload, response headers)."""
        status, headers, body = fetch(uri)
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["Content-Type"], "application/statuslist+jwt")
        header, payload = verify_jwt(body, self.daemon.jwks_json(), "ES256")
        return header, payload, headers

    def wait_for_bit(self, uri, idx, value, within=5.0):
        deadline = time.monotonic() + within
        while True:
            _, payload, _ = self.list_token(uri)
            if bit(payload, idx) == value or time.monotonic() > deadline:
                return bit(payload, idx)
            time.sleep(0.1)

    def test_every_jwt_names_an_entry_of_a_list_the_jwks_listener_serves(self):
        _, claims = self.issue()
        uri, idx = status_of(claims)
        self.assertTrue(uri.startswith(f"http://127.0.0.1:{self.daemon.port}/statuslists/default/"), uri)
        header, payload, headers = self.list_token(uri)
        self.assertEqual(header["typ"], "statuslist+jwt")
        self.assertIn(header["kid"], [k["kid"] for k in json.loads(self.daemon.jwks_json())["keys"]])
        self.assertEqual(payload["sub"], uri)
        self.assertEqual(payload["ttl"], 30)
        self.assertGreater(payload["exp"], payload["iat"])
        self.assertLessEqual(abs(payload["iat"] - time.time()), 5)
        self.assertEqual(bit(payload, idx), 0)
        self.assertEqual(headers["Cache-Control"], "public, max-age=30")
        self.assertTrue(headers["ETag"].startswith('"'), headers["ETag"])

    def test_indices_of_successive_tokens_are_distinct(self):
        entries = [status_of(self.issue(f"user-{i}")[1]) for i in range(20)]
        self.assertEqual(len(set(entries)), len(entries))

    def test_a_revoked_tokens_bit_is_set_and_its_neighbours_are_not(self):
        tokens = [self.issue(f"n-{i}") for i in range(3)]
        revoked_jwt, revoked_claims = tokens[1]
        uri, idx = status_of(revoked_claims)
        answer = self.daemon.post("/v1/revoke", {"jwt": revoked_jwt})
        self.assertEqual(answer.status, 200, answer)
        self.assertTrue(answer.json["revoked"], answer)
        # A list is signed again at most once a second: the bit shows within a few.
        self.assertEqual(self.wait_for_bit(uri, idx, 1), 1)
        _, payload, _ = self.list_token(uri)
        for _, claims in (tokens[0], tokens[2]):
            self.assertEqual(status_of(claims)[0], uri)
            self.assertEqual(bit(payload, status_of(claims)[1]), 0)

    def test_an_independent_verifier_reads_the_list(self):
        good_jwt, _ = self.issue("node-good")
        bad_jwt, bad_claims = self.issue("node-bad")
        self.assertEqual(self.daemon.post("/v1/revoke", {"jwt": bad_jwt}).status, 200)
        self.assertEqual(self.wait_for_bit(*status_of(bad_claims), 1), 1)
        self.assertEqual(node_verify(self.daemon, good_jwt, "--status-list"), {"valid": True, "jti": decode_segment(good_jwt.split(".")[1])["jti"]})
        answer = node_verify(self.daemon, bad_jwt, "--status-list")
        self.assertEqual((answer["valid"], answer["reason"], answer["by"]), (False, "revoked", "status-list"), answer)

    def test_a_conditional_get_of_an_unchanged_list_is_304(self):
        _, claims = self.issue()
        uri, _ = status_of(claims)
        _, _, headers = self.list_token(uri)
        status, again, body = fetch(uri, {"If-None-Match": headers["ETag"]})
        self.assertEqual((status, body), (304, ""))
        self.assertEqual(again["ETag"], headers["ETag"])

    def test_a_list_that_does_not_exist_is_404_and_the_listener_stays_read_only(self):
        base = f"http://127.0.0.1:{self.daemon.port}/statuslists"
        for path in ("/default/1", "/nokeyset/0", "/", "/default/../../etc/passwd"):
            with self.subTest(path=path):
                self.assertEqual(fetch(base + path)[0], 404)
        _, claims = self.issue()
        request = urllib.request.Request(status_of(claims)[0], data=b"{}", method="POST")
        with self.assertRaises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        self.assertEqual(refused.exception.code, 405)

    def test_a_client_cannot_set_the_status_claim(self):
        answer = self.daemon.post("/v1/jwt", {"sub": "alice", "claims": {"status": {"status_list": {"idx": 0, "uri": "x"}}}})
        self.assertError(answer, 400, "bad_request")

    def test_every_status_list_signature_is_an_audit_line(self):
        _, claims = self.issue()
        uri, _ = status_of(claims)
        self.list_token(uri)
        lines = [json.loads(l) for l in (self.daemon.workdir / "log" / "audit.jsonl").read_text().splitlines()]
        signed = [l for l in lines if l["event"] == "sign" and l.get("operation") == "statuslist"]
        self.assertTrue(signed)
        self.assertTrue(all(l["uri"].startswith(f"http://127.0.0.1:{self.daemon.port}/statuslists/") for l in signed))


class StatusListRestartTest(unittest.TestCase):
    def setUp(self):
        self.daemon = Daemon(revocation=STATUS_LIST)
        self.addCleanup(self.daemon.cleanup)
        self.daemon.start()

    def test_indices_and_bits_survive_kill_minus_9(self):
        tokens = [self.daemon.post("/v1/jwt", {"sub": f"k-{i}"}).json["jwt"] for i in range(5)]
        self.assertEqual(self.daemon.post("/v1/revoke", {"jwt": tokens[2]}).status, 200)
        before = [status_of(decode_segment(t.split(".")[1])) for t in tokens]
        self.daemon.kill()
        self.daemon.start()
        after = [status_of(decode_segment(self.daemon.post("/v1/jwt", {"sub": f"a-{i}"}).json["jwt"].split(".")[1]))
                 for i in range(5)]
        self.assertFalse(set(before) & set(after), "an index was handed out twice")
        uri, idx = before[2]
        status, _, body = fetch(uri)
        self.assertEqual(status, 200, body)
        _, payload = verify_jwt(body, self.daemon.jwks_json(), "ES256")
        self.assertEqual(bit(payload, idx), 1)
        self.assertEqual(bit(payload, before[1][1]), 0)
        # Every index handed out is inside the list a verifier fetches.
        for u, i in after:
            self.assertEqual(u, uri)
            self.assertEqual(bit(payload, i), 0)


if __name__ == "__main__":
    unittest.main()


class ForgedEntriesTest(DaemonTestCase):
    """A client with jws on a keyset signs any payload with it: such a payload must not pass for another
    client's JWT, nor set bits in the lists of another keyset."""
    DAEMON = dict(keysets=[("default", "ES256"), ("other", "ES256")],
                  clients=[client(name="x", keysets=["default", "other"], operations=["jwt", "jws"]),
                           client(name="y", uids=[4242], keysets=["default"], operations=["jwt"],
                                  issuer="https://y.example")],
                  revocation=STATUS_LIST)

    def jws(self, claims, keyset="other"):
        payload = b64url(json.dumps(claims).encode())
        answer = self.daemon.post("/v1/jws", {"payload": payload, "keyset": keyset, "typ": "JWT"})
        self.assertEqual(answer.status, 200, answer)
        return answer.json["jws"]

    def claims(self, **extra):
        now = int(time.time())
        return {"iss": ISSUER, "sub": "forger", "aud": "api-gateway", "iat": now, "nbf": now, "exp": now + 300,
                "jti": f"forged-{time.monotonic_ns()}", **extra}

    def test_a_payload_of_another_keyset_does_not_pass_for_another_clients_jwt(self):
        forged = self.jws(self.claims(iss="https://y.example"))
        verdict = self.daemon.post("/v1/verify", {"jwt": forged}).json
        self.assertEqual(verdict["reason"], "wrong_issuer", verdict)
        # Its own iss on a keyset it may have JWTs signed by is a token like any other.
        self.assertTrue(self.daemon.post("/v1/verify", {"jwt": self.jws(self.claims())}).json["valid"])

    def test_a_token_whose_jti_is_longer_than_any_of_the_daemons_is_refused(self):
        answer = self.daemon.post("/v1/revoke", {"jwt": self.jws(self.claims(jti="j" * 257), keyset="default")})
        self.assertError(answer, 400, "bad_request")
        self.assertEqual(self.daemon.post("/v1/revoke", {"jwt": self.jws(self.claims(jti="j" * 256), keyset="default")}).status,
                         200)

    def test_a_status_entry_of_another_keysets_list_sets_no_bit(self):
        real = self.daemon.post("/v1/jwt", {"sub": "victim"}).json["jwt"]
        uri, idx = status_of(decode_segment(real.split(".")[1]))
        self.assertIn("/statuslists/default/", uri)
        forged = self.jws(self.claims(status={"status_list": {"idx": idx, "uri": uri}}))
        answer = self.daemon.post("/v1/revoke", {"jwt": forged})
        self.assertEqual(answer.status, 200, answer)
        self.assertTrue(answer.json["revoked"], answer)  # its own token, revoked...
        time.sleep(1.1)  # past the once-a-second re-signing, so a set bit would show
        status, _, body = fetch(uri)
        self.assertEqual(status, 200, body)
        _, payload = verify_jwt(body, self.daemon.jwks_json(), "ES256")
        self.assertEqual(bit(payload, idx), 0, "a forged status entry set the bit of another token")  # ...not the victim
        self.assertTrue(self.daemon.post("/v1/verify", {"jwt": real}).json["valid"])
