"""What the daemon publishes: the JWK Set (listener, socket, file), /v1/keys, /healthz and /metrics."""
import json
import re
import time
import unittest
from datetime import datetime, timedelta

from jwcrypto import jwk

from harness import DaemonTestCase

ALGORITHMS = {"es256": "ES256", "rs256": "RS256", "ps256": "PS256", "es384": "ES384", "eddsa": "EdDSA"}
PUBLIC_MEMBERS = {  # RFC 7517/7518/8037 public parameters, plus the members the contract adds
    "ES256": {"kty": "EC", "crv": "P-256", "members": {"kty", "crv", "x", "y"}},
    "ES384": {"kty": "EC", "crv": "P-384", "members": {"kty", "crv", "x", "y"}},
    "RS256": {"kty": "RSA", "members": {"kty", "n", "e"}},
    "PS256": {"kty": "RSA", "members": {"kty", "n", "e"}},
    "EdDSA": {"kty": "OKP", "crv": "Ed25519", "members": {"kty", "crv", "x"}},
}
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
JWKS_PATH = "/.well-known/jwks.json"


def parse_time(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def metric_values(text, name):
    """{labels: value} of every sample of one metric in Prometheus text format."""
    samples = {}
    for line in text.splitlines():
        match = re.match(rf"^{name}(\{{[^}}]*\}})?\s+(\S+)$", line)
        if match:
            samples[match.group(1) or ""] = float(match.group(2))
    return samples


class JwksTest(DaemonTestCase):
    DAEMON = dict(keysets=[{"name": name, "algorithm": alg, "rotation_period": "30d", "prepublish": "1h",
                            "retire_after": "1d"} for name, alg in ALGORITHMS.items()],
                  jwks={"max_age": "7m"})

    def keys_by_keyset(self):
        return {k["keyset"]: k for k in self.daemon.get("/v1/keys").json["keys"]}

    # --- the JWK Set --------------------------------------------------------------------------------

    def test_the_listener_serves_the_jwks_with_etag_and_cache_control(self):
        answer = self.daemon.public("GET", JWKS_PATH)
        self.assertEqual(answer.status, 200, answer)
        self.assertIn("json", answer.headers.get("content-type", ""))
        self.assertRegex(answer.headers.get("etag", ""), r'^(W/)?"[^"]+"$')
        self.assertEqual(answer.headers.get("cache-control"), "public, max-age=420", "jwks.max_age is 7m")
        self.assertEqual(len(answer.json["keys"]), len(ALGORITHMS))

    def test_if_none_match_with_the_etag_gets_304(self):
        etag = self.daemon.public("GET", JWKS_PATH).headers["etag"]
        answer = self.daemon.public("GET", JWKS_PATH, headers={"If-None-Match": etag})
        self.assertEqual(answer.status, 304, answer)
        self.assertEqual(answer.body, b"")
        self.assertEqual(answer.headers.get("etag"), etag)
        self.assertNotIn("content-length", answer.headers, "a 304 may only carry the 200's length, never 0")
        # A list of tags, a weak tag and "*" match too (RFC 9110 13.1.2: If-None-Match compares weakly).
        for header in (f'"old", {etag}', f"W/{etag}", "*", f' {etag} '):
            with self.subTest(header=header):
                self.assertEqual(self.daemon.public("GET", JWKS_PATH, headers={"If-None-Match": header}).status, 304)
        # Gets the document because the cached copy is another one
        answer = self.daemon.public("GET", JWKS_PATH, headers={"If-None-Match": '"not-the-etag"'})
        self.assertEqual(answer.status, 200, answer)
        self.assertEqual(len(answer.json["keys"]), len(ALGORITHMS))

    def test_the_socket_the_listener_and_the_file_publish_the_same_keys(self):
        listener = self.daemon.public("GET", JWKS_PATH)
        on_socket = self.daemon.get(JWKS_PATH)
        self.assertEqual(on_socket.status, 200, on_socket)
        self.assertEqual(on_socket.json, listener.json)
        self.assertEqual(on_socket.headers.get("etag"), listener.headers.get("etag"))
        self.assertEqual(json.loads(self.daemon.jwks_file_json()), listener.json)

    def test_entries_hold_public_members_only(self):
        for entry in self.daemon.public("GET", JWKS_PATH).json["keys"]:
            with self.subTest(alg=entry.get("alg")):
                expected = PUBLIC_MEMBERS[entry["alg"]]
                self.assertEqual(set(entry), expected["members"] | {"kid", "alg", "use"}, "private or extra members")
                self.assertNotIn("d", entry)
                self.assertEqual(entry["kty"], expected["kty"])
                if "crv" in expected:
                    self.assertEqual(entry["crv"], expected["crv"])
                self.assertEqual(entry["use"], "sig")
                key = jwk.JWK(**entry)
                self.assertFalse(key.has_private)
                if entry["kty"] == "RSA":
                    self.assertGreaterEqual(key.get_op_key("verify").key_size, 2048)

    def test_kid_is_the_rfc7638_thumbprint(self):
        for entry in self.daemon.public("GET", JWKS_PATH).json["keys"]:
            with self.subTest(alg=entry["alg"]):
                self.assertEqual(entry["kid"], jwk.JWK(**entry).thumbprint())

    def test_each_keyset_publishes_its_algorithm(self):
        keys = self.keys_by_keyset()
        published = {e["kid"]: e["alg"] for e in self.daemon.public("GET", JWKS_PATH).json["keys"]}
        for keyset, alg in ALGORITHMS.items():
            with self.subTest(keyset=keyset):
                self.assertEqual(published[keys[keyset]["kid"]], alg)

    # --- the listener is read-only -------------------------------------------------------------------

    def test_the_listener_refuses_writes(self):
        for path in (JWKS_PATH, "/healthz"):
            with self.subTest(path=path):
                answer = self.daemon.public("POST", path, body=b"{}")
                self.assertError(answer, 405, "method_not_allowed")
                self.assertEqual(answer.headers.get("allow"), "GET, HEAD")
        self.assertEqual(self.daemon.public("GET", JWKS_PATH).status, 200)

    def test_the_listener_does_not_serve_unknown_paths(self):
        self.assertError(self.daemon.public("GET", "/nope"), 404, "not_found")
        self.assertError(self.daemon.public("GET", "/.well-known/jwks.json/x"), 404, "not_found")

    def test_the_listener_does_not_issue(self):
        request = json.dumps({"sub": "user-1"}).encode()
        for method, path in (("POST", "/v1/jwt"), ("POST", "/v1/jws"), ("POST", "/v1/sign"), ("GET", "/v1/jwt")):
            with self.subTest(method=method, path=path):
                answer = self.daemon.public(method, path, body=request if method == "POST" else None,
                                            headers={"Content-Type": "application/json"})
                self.assertIn(answer.status, (404, 405), answer)
                self.assertError(answer, answer.status, {404: "not_found", 405: "method_not_allowed"}[answer.status])
                self.assertNotIn(b"eyJ", answer.body)
        self.assertEqual(self.daemon.post("/v1/jwt", {"sub": "user-1"}).status, 200, "the socket does issue")

    def test_the_listener_answers_healthz(self):
        answer = self.daemon.public("GET", "/healthz")
        self.assertEqual(answer.status, 200, answer)
        self.assertEqual(answer.json, {"status": "ok"})

    # --- /v1/keys, /healthz, /metrics on the socket ----------------------------------------------------

    def test_keys_lists_one_active_key_per_keyset(self):
        answer = self.daemon.get("/v1/keys")
        self.assertEqual(answer.status, 200, answer)
        keys = answer.json["keys"]
        self.assertEqual(sorted(k["keyset"] for k in keys), sorted(ALGORITHMS))
        jwks_kids = {e["kid"] for e in self.daemon.public("GET", JWKS_PATH).json["keys"]}
        for key in keys:
            with self.subTest(keyset=key["keyset"]):
                self.assertTrue({"kid", "keyset", "alg", "state", "created", "activates", "deactivates",
                                 "retires"} <= set(key), key)
                self.assertEqual(key["state"], "active")
                self.assertEqual(key["alg"], ALGORITHMS[key["keyset"]])
                self.assertIn(key["kid"], jwks_kids)
                for field in ("created", "activates"):
                    self.assertRegex(key[field], RFC3339_UTC, field)
                self.assertLessEqual(parse_time(key["activates"]), datetime.now().astimezone() + timedelta(seconds=5))

    def test_key_lifecycle_times_follow_the_rotation_period(self):
        # The contract lists deactivates and retires as RFC 3339 times: with rotation_period 30d and
        # retire_after 1d they are known from the moment the key activates.
        for key in self.daemon.get("/v1/keys").json["keys"]:
            with self.subTest(keyset=key["keyset"]):
                for field in ("deactivates", "retires"):
                    self.assertIsInstance(key[field], str, f"{field} is {key[field]!r}")
                    self.assertRegex(key[field], RFC3339_UTC, field)
                activates, deactivates = parse_time(key["activates"]), parse_time(key["deactivates"])
                self.assertEqual(deactivates - activates, timedelta(days=30))
                self.assertEqual(parse_time(key["retires"]) - deactivates, timedelta(days=1))

    def test_healthz_says_ok(self):
        answer = self.daemon.get("/healthz")
        self.assertEqual(answer.status, 200, answer)
        self.assertIn("json", answer.headers.get("content-type", ""))
        self.assertEqual(answer.json, {"status": "ok"})

    def test_metrics_count_requests_and_signatures(self):
        before = self.daemon.get("/metrics")
        self.assertEqual(before.status, 200, before)
        self.assertIn("text/plain", before.headers.get("content-type", ""))
        self.daemon.jwt(keyset="rs256")
        after = self.daemon.get("/metrics").body.decode()
        requests_before = metric_values(before.body.decode(), "hsmsignd_requests_total")
        signatures_before = metric_values(before.body.decode(), "hsmsignd_signatures_total")
        requests_after = metric_values(after, "hsmsignd_requests_total")
        signatures_after = metric_values(after, "hsmsignd_signatures_total")
        self.assertTrue(requests_after, "no hsmsignd_requests_total samples")
        self.assertTrue(signatures_after, "no hsmsignd_signatures_total samples")
        self.assertEqual(sum(requests_after.values()) - sum(requests_before.values()), 2.0,
                      "a /v1/jwt and a /metrics request were answered in between")
        self.assertEqual(sum(signatures_after.values()) - sum(signatures_before.values()), 1.0,
                         "one token is one signature")
        self.assertIn("# TYPE hsmsignd_requests_total counter", after)
        self.assertIn("# TYPE hsmsignd_signatures_total counter", after)

    def test_metrics_say_where_a_requests_time_went(self):
        def stages(text, part):
            return metric_values(text, f"hsmsignd_request_stage_seconds_{part}")

        before = self.daemon.get("/metrics").body.decode()
        started = time.monotonic()
        self.daemon.jwt(keyset="es256")
        took = time.monotonic() - started
        after = self.daemon.get("/metrics").body.decode()
        self.assertIn("# TYPE hsmsignd_request_stage_seconds histogram", after)
        spent = 0.0
        for stage in ("queue", "sign", "audit"):
            labels = f'{{stage="{stage}"}}'
            counts = stages(after, "count").get(labels, 0) - stages(before, "count").get(labels, 0)
            self.assertEqual(counts, 1.0, f"one request, one {stage} sample")
            seconds = stages(after, "sum")[labels] - stages(before, "sum").get(labels, 0)
            self.assertGreaterEqual(seconds, 0.0, stage)
            spent += seconds
            inf = f'{{stage="{stage}",le="+Inf"}}'
            self.assertEqual(stages(after, "bucket")[inf], stages(after, "count")[labels], stage)
        # The stages are parts of the request: together more than nothing, less than the whole.
        self.assertGreater(spent, 0.0)
        self.assertLess(spent, took)


if __name__ == "__main__":
    unittest.main()
