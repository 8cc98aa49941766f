"""The client policy: who may ask, for which keyset, operation, audience and lifetime."""
import json
import unittest

from harness import DaemonTestCase, as_uid, b64url, client, verify_jwt

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


if __name__ == "__main__":
    unittest.main()
