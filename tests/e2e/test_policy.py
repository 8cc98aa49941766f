"""The client policy: who may ask, for which keyset, operation, audience and lifetime."""
import json
import time
import unittest

from harness import DaemonTestCase, as_uid, b64url, client, http_request, verify_jwt

NOBODY = 65534


class PolicyTest(DaemonTestCase):
    # "narrow" (uid 0, the tests) may only ask for JWTs from "default"; "other" belongs to another team.
    DAEMON = dict(keysets=[("default", "ES256"), ("other", "ES256")],
                  clients=[client(name="narrow", keysets=["default"], operations=["jwt"],
                                  audiences=["api-gateway", "billing"], max_ttl="15m"),
                           client(name="other-team", uids=[4242], keysets=["other"])])

    def assertForbidden(self, answer):
        self.assertError(answer, 403, "forbidden")

    def test_an_audience_of_the_client_is_allowed(self):
        for aud in ("api-gateway", "billing", ["api-gateway", "billing"]):
            with self.subTest(aud=aud):
                answer = self.daemon.post("/v1/jwt", {"sub": "user-1", "aud": aud})
                self.assertEqual(answer.status, 200, answer)
                _, claims = verify_jwt(answer.json["jwt"], self.daemon.jwks_json(), "ES256")
                self.assertEqual(claims["aud"], aud)

    def test_an_audience_outside_the_clients_audiences_is_forbidden(self):
        for aud in ("payments", "API-GATEWAY", "api-gateway ", ["api-gateway", "payments"], ["payments"]):
            with self.subTest(aud=aud):
                self.assertForbidden(self.daemon.post("/v1/jwt", {"sub": "user-1", "aud": aud}))

    def test_the_clients_keyset_is_allowed(self):
        self.assertEqual(self.daemon.post("/v1/jwt", {"sub": "user-1", "keyset": "default"}).status, 200)

    def test_a_keyset_of_another_client_is_forbidden(self):
        self.assertForbidden(self.daemon.post("/v1/jwt", {"sub": "user-1", "keyset": "other"}))

    def test_an_unknown_keyset_is_refused(self):
        answer = self.daemon.post("/v1/jwt", {"sub": "user-1", "keyset": "no-such-keyset"})
        self.assertIn(answer.status, (403, 404), answer)
        self.assertError(answer, answer.status, {403: "forbidden", 404: "not_found"}[answer.status])

    def test_an_operation_the_client_lacks_is_forbidden(self):
        self.assertEqual(self.daemon.post("/v1/jwt", {"sub": "user-1"}).status, 200)
        self.assertForbidden(self.daemon.post("/v1/jws", {"payload": b64url(b"hello")}))
        self.assertForbidden(self.daemon.post("/v1/sign", {"digest": b64url(b"\1" * 32)}))

    def test_ttl_up_to_max_ttl_is_allowed(self):
        answer = self.daemon.post("/v1/jwt", {"sub": "user-1", "ttl": 900})
        self.assertEqual(answer.status, 200, answer)
        self.assertEqual(answer.json["exp"] - answer.json["iat"], 900)

    def test_ttl_over_max_ttl_is_refused(self):
        for ttl in (901, 3600, 1000000000000):
            with self.subTest(ttl=ttl):
                self.assertError(self.daemon.post("/v1/jwt", {"sub": "user-1", "ttl": ttl}), 400, "bad_request")

    def test_ttl_must_be_a_positive_whole_number_of_seconds(self):
        for ttl in ("0", "-1", "-300", "1.5", '"300"', "true", "null", "1e12", "1E3", "[300]", "{}",
                    "99999999999999999999999999999"):
            with self.subTest(ttl=ttl):
                body = ('{"sub": "user-1", "ttl": %s}' % ttl).encode()
                answer = self.daemon.post("/v1/jwt", body, headers={"Content-Type": "application/json"})
                self.assertError(answer, 400, "bad_request")
                self.assertIn("ttl", answer.json["message"])

    def test_a_peer_that_is_no_client_is_forbidden(self):
        def jwt_as(uid):
            return as_uid(uid, self.daemon.socket_path, [["POST", "/v1/jwt", {"sub": "user-1"}]])[0]

        self.assertEqual(jwt_as(0)["status"], 200, "the same request as uid 0, a client, is served")
        answer = jwt_as(NOBODY)
        self.assertEqual(answer["status"], 403, answer)
        body = json.loads(answer["body"])
        self.assertEqual(body["error"], "forbidden")
        self.assertTrue(body["message"])
        self.assertNotIn("jwt", body)
        self.assertStillServes()


def audit_records(daemon):
    return [json.loads(line) for line in (daemon.workdir / "log" / "audit.jsonl").read_text().splitlines()]


class SubjectTest(DaemonTestCase):
    """subjects: a compromised issuer can mint tokens only for its own subjects."""
    DAEMON = dict(clients=[client(name="billing", operations=["jwt"], subjects=["user:*", "svc:billing"])])

    def test_a_listed_subject_gets_a_token(self):
        for sub in ("user:1", "user:alice@example.com", "svc:billing"):
            with self.subTest(sub=sub):
                answer = self.daemon.post("/v1/jwt", {"sub": sub})
                self.assertEqual(answer.status, 200, answer)
                _, claims = verify_jwt(answer.json["jwt"], self.daemon.jwks_json(), "ES256")
                self.assertEqual(claims["sub"], sub)

    def test_another_subject_is_forbidden_and_audited_naming_the_rule(self):
        for sub in ("admin", "svc:billing2", "users:1", "USER:1"):
            with self.subTest(sub=sub):
                answer = self.daemon.post("/v1/jwt", {"sub": sub})
                self.assertError(answer, 403, "forbidden")
                self.assertIn(f'"{sub}"', answer.json["message"])
                self.assertNotIn("jwt", answer.json)
        # Answered once its own line is durable, after the deny lines queued before it.
        self.assertEqual(self.daemon.post("/v1/jwt", {"sub": "user:after"}).status, 200, "the client is still served")
        denied = [r for r in audit_records(self.daemon) if r["event"] == "deny" and r.get("rule") == "subjects"]
        self.assertEqual([r["sub"] for r in denied], ["admin", "svc:billing2", "users:1", "USER:1"])
        for r in denied:
            self.assertEqual((r["client"], r["reason"], r["uid"]), ("billing", "subject not allowed", 0), r)
        self.assertNotIn("issue", {r["event"] for r in audit_records(self.daemon) if r.get("sub") == "admin"})


class RateLimitTest(DaemonTestCase):
    """max_rate: a burst of 1,000 requests meets a bucket of 100; the rest are 429 with Retry-After."""
    RATE = 100
    DAEMON = dict(clients=[client(name="bursty", max_rate=f"{RATE}/s")])

    def burst(self, n, connections=8):
        """n requests pipelined over several connections at once; the answers, in order. (Refusals are
        answered at once, a token only once its audit line is on disk: several connections keep the
        arrivals well ahead of the refill even when the disk is slow.)"""
        request = http_request("POST", "/v1/jwt", json.dumps({"sub": "user-1"}).encode(),
                               ["Content-Type: application/json"])
        clients = [self.daemon.raw(timeout=30) for _ in range(connections)]
        share = [n // connections + (i < n % connections) for i in range(connections)]
        started = time.monotonic()
        for c, k in zip(clients, share):
            c.send(request * k)
        answers = [c.response() for c, k in zip(clients, share) for _ in range(k)]
        elapsed = time.monotonic() - started
        for c in clients:
            c.close()
        return answers, elapsed

    def metric(self, name):
        lines = self.daemon.get("/metrics").body.decode().splitlines()
        return [line for line in lines if line.startswith(name)]

    def counted(self):
        return sum(int(line.split()[-1]) for line in self.metric("hsmsignd_rate_limited_total{"))

    def reported(self):
        """Refusals the audit log accounts for, once the daemon's once-a-second report has caught up with
        /metrics (or 10 s have passed)."""
        deadline = time.monotonic() + 10
        while True:
            lines = [r for r in audit_records(self.daemon) if r["event"] == "deny" and r.get("reason") == "max_rate"]
            if sum(r["refused"] for r in lines) == self.counted() or time.monotonic() > deadline:
                return lines
            time.sleep(0.2)

    def test_a_burst_over_max_rate_is_refused_with_retry_after_counted_and_audited_once_a_second(self):
        lines_before = len(self.reported())  # earlier tests' refusals are in the log
        time.sleep(1.1)  # a full bucket
        before = len(audit_records(self.daemon))
        refused_before = self.counted()
        answers, elapsed = self.burst(1000)
        ok = [a for a in answers if a.status == 200]
        refused = [a for a in answers if a.status == 429]
        self.assertEqual(len(ok) + len(refused), 1000, {a.status for a in answers})
        # The bucket holds one second's worth and refills at the rate while the burst runs.
        self.assertGreaterEqual(len(ok), self.RATE)
        self.assertLessEqual(len(ok), self.RATE + self.RATE * elapsed + 1, f"{len(ok)} in {elapsed:.2f} s")
        for a in refused:
            self.assertError(a, 429, "overloaded")
            self.assertIn("max_rate", a.json["message"])
            self.assertEqual(a.headers.get("retry-after"), "1")
        jwks = self.daemon.jwks_json()
        for a in ok[:5]:
            verify_jwt(a.json["jwt"], jwks, "ES256")

        counted = self.metric('hsmsignd_rate_limited_total{client="bursty"}')
        self.assertEqual(len(counted), 1, counted)
        self.assertEqual(int(counted[0].split()[-1]) - refused_before, len(refused))
        lines = self.reported()[lines_before:]
        self.assertEqual(sum(r["refused"] for r in lines), len(refused), "every refusal is accounted for")
        self.assertLessEqual(len(lines), elapsed + 2, "one line per second of refusals, not one per request")
        records = audit_records(self.daemon)[before:]
        for r in lines:
            self.assertEqual((r["client"], r["uid"]), ("bursty", 0), r)
        self.assertEqual(sum(1 for r in records if r["event"] == "issue"), len(ok))

    def test_the_bucket_refills_and_other_routes_are_not_limited(self):
        time.sleep(1.1)
        answers, _ = self.burst(1000)
        self.assertIn(429, {a.status for a in answers})
        for _ in range(300):  # reading is not signing
            self.assertEqual(self.daemon.get("/v1/keys").status, 200)
        time.sleep(1.1)
        answer = self.daemon.post("/v1/jwt", {"sub": "after"})
        self.assertEqual(answer.status, 200, answer)


if __name__ == "__main__":
    unittest.main()
