"""Hostile and broken requests: each gets a clear JSON error, and a good client is served right after."""
import json
import unittest

from harness import DaemonTestCase, b64url, http_request

JSON = {"Content-Type": "application/json"}
MAX_BODY = 4096


def nested(depth):
    value = 1
    for _ in range(depth):
        value = {"a": value}
    return value


class BadBodyTest(DaemonTestCase):
    DAEMON = dict(server={"max_body": MAX_BODY})

    def post_bytes(self, path, body):
        return self.daemon.post(path, body, headers=JSON)

    def assertRefused(self, answer, status=400, code="bad_request", names=None):
        """A JSON error (naming the member when given), then the daemon still serves a good client."""
        self.assertError(answer, status, code)
        if names:
            self.assertIn(names, answer.json["message"])
        self.assertStillServes()

    def test_a_well_formed_request_is_served(self):
        self.assertEqual(self.post_bytes("/v1/jwt", b'{"sub": "user-1"}').status, 200)

    def test_malformed_json_is_refused(self):
        for body in (b"{", b'{"sub": "user-1"', b'{"sub": user}', b"", b'{"sub": "a"} trailing', b"{'sub': 'a'}",
                     b'{"sub": "a",}'):
            with self.subTest(body=body):
                self.assertRefused(self.post_bytes("/v1/jwt", body))

    def test_json_that_is_not_an_object_is_refused(self):
        for body in (b"[]", b'"x"', b"5", b"null", b"true", b'[{"sub": "user-1"}]'):
            with self.subTest(body=body):
                self.assertRefused(self.post_bytes("/v1/jwt", body))

    def test_an_unknown_member_is_refused(self):
        for path, body in (("/v1/jwt", {"sub": "user-1", "subject": "x"}), ("/v1/jwt", {"sub": "user-1", "iss": "x"}),
                           ("/v1/jws", {"payload": b64url(b"x"), "alg": "none"}),
                           ("/v1/sign", {"digest": b64url(b"\1" * 32), "alg": "HS256"})):
            with self.subTest(path=path, body=body):
                unknown = (set(body) - {"sub", "payload", "digest"}).pop()
                self.assertRefused(self.daemon.post(path, body), names=unknown)

    def test_a_missing_required_member_is_refused(self):
        for path, body, member in (("/v1/jwt", {}, "sub"), ("/v1/jwt", {"aud": "api-gateway"}, "sub"),
                                   ("/v1/jws", {"typ": "x"}, "payload"), ("/v1/sign", {}, "digest")):
            with self.subTest(path=path, body=body):
                self.assertRefused(self.daemon.post(path, body), names=member)

    def test_wrong_types_are_refused_for_every_member(self):
        wrong = [5, 1.5, True, None, [], {}, ["x"]]
        members = {
            "/v1/jwt": ({"sub": "user-1"}, {"sub": wrong, "aud": [5, True, {}, [5], [None], [[]]],
                                            "ttl": ["300", True, None, [], {}, 1.5], "keyset": wrong, "typ": wrong,
                                            "claims": ["x", 5, True, [], ["a"]]}),
            "/v1/jws": ({"payload": b64url(b"x")}, {"payload": wrong, "keyset": wrong, "typ": wrong, "cty": wrong}),
            "/v1/sign": ({"digest": b64url(b"\1" * 32)}, {"digest": wrong, "keyset": wrong}),
        }
        for path, (base, by_member) in members.items():
            self.assertEqual(self.daemon.post(path, base).status, 200, f"{path} {base} is served")
            for member, values in by_member.items():
                for value in values:
                    with self.subTest(path=path, member=member, value=value):
                        self.assertRefused(self.daemon.post(path, {**base, member: value}), names=member)

    def test_payload_and_digest_must_be_base64url(self):
        for path, member in (("/v1/jws", "payload"), ("/v1/sign", "digest")):
            for text in ("not base64!", "a+b/" * 8, "A", "%%%%"):
                with self.subTest(path=path, text=text):
                    self.assertRefused(self.daemon.post(path, {member: text}), names=member)

    def test_invalid_utf8_in_a_string_is_refused(self):
        for body in (b'{"sub": "\xff"}', b'{"sub": "user-\xc3"}', b'{"sub": "u", "claims": {"name": "\xed\xa0\x80"}}',
                     b'{"sub": "u", "claims": {"\xfe": 1}}'):
            with self.subTest(body=body):
                self.assertRefused(self.post_bytes("/v1/jwt", body))

    def test_a_duplicate_member_is_refused(self):
        for body in (b'{"sub": "a", "sub": "b"}', b'{"sub": "a", "ttl": 60, "ttl": 900}',
                     b'{"sub": "a", "claims": {"role": "user", "role": "admin"}}'):
            with self.subTest(body=body):
                self.assertRefused(self.post_bytes("/v1/jwt", body))

    def test_shallow_nesting_in_claims_is_accepted(self):
        answer = self.daemon.post("/v1/jwt", {"sub": "user-1", "claims": {"ctx": nested(3)}})
        self.assertEqual(answer.status, 200, answer)

    def test_deeply_nested_claims_are_refused(self):
        for claims in ({"deep": nested(100)}, {"deep": json.loads("[" * 100 + "]" * 100)}):
            with self.subTest(depth=100):
                self.assertRefused(self.daemon.post("/v1/jwt", {"sub": "user-1", "claims": claims}))
        # As deep as max_body allows: enough to exhaust the stack of a naive recursive parser
        deepest = b'{"sub": "u", "claims": {"a": ' + b"[" * 2000 + b"]" * 2000 + b"}}"
        self.assertLessEqual(len(deepest), MAX_BODY)
        self.assertRefused(self.post_bytes("/v1/jwt", deepest))

    def test_a_body_within_max_body_is_served(self):
        body = json.dumps({"sub": "user-1", "claims": {"pad": "x" * (MAX_BODY - 200)}}).encode()
        self.assertLessEqual(len(body), MAX_BODY)
        self.assertEqual(self.post_bytes("/v1/jwt", body).status, 200)

    def test_a_body_over_max_body_is_too_large(self):
        body = json.dumps({"sub": "user-1", "claims": {"pad": "x" * (MAX_BODY + 100)}}).encode()
        self.assertRefused(self.post_bytes("/v1/jwt", body), 413, "too_large")

    def test_a_huge_content_length_is_refused_before_the_body_arrives(self):
        with self.daemon.raw() as conn:
            conn.send(b"POST /v1/jwt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000000\r\n\r\n{")
            self.assertRefused(conn.response(), 413, "too_large")
            self.assertTrue(conn.closed_by_peer(), "the unread body would be taken for the next request")


class BadHttpTest(DaemonTestCase):
    DAEMON = dict(server={"max_body": MAX_BODY})

    def exchange(self, data, wait_for_close=True):
        """Sends raw bytes; returns (answer, whether the daemon then closed the connection)."""
        with self.daemon.raw() as conn:
            conn.send(data)
            answer = conn.response()
            self.assertIsNotNone(answer, f"connection closed without an answer to {data[:80]!r}")
            return answer, wait_for_close and conn.closed_by_peer()

    def test_a_header_within_8_kib_is_served(self):
        request = http_request("GET", "/healthz", headers=["X-Pad: " + "a" * 4000])
        answer, _ = self.exchange(request, wait_for_close=False)
        self.assertEqual(answer.status, 200, answer)

    def test_a_header_over_8_kib_is_too_large(self):
        for headers in (["X-Pad: " + "a" * 9000], [f"X-Pad-{i}: " + "a" * 100 for i in range(100)]):
            with self.subTest(lines=len(headers)):
                answer, closed = self.exchange(http_request("GET", "/healthz", headers=headers))
                self.assertError(answer, 413, "too_large")
                self.assertTrue(closed)
                self.assertStillServes()

    def test_garbage_that_is_not_http_is_refused(self):
        for data in (b"HELLO WORLD\r\n\r\n", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(64) + b"\r\n\r\n",
                     b"GET\r\n\r\n", b"GET /healthz HTTP/9.9\r\n\r\n",
                     b"GET /healthz HTTP/1.1\r\nNo colon here\r\n\r\n"):
            with self.subTest(data=data[:30]):
                answer, closed = self.exchange(data)
                self.assertError(answer, 400, "bad_request")
                self.assertTrue(closed, "after a malformed request the framing is lost: close")
                self.assertStillServes()

    def test_a_refusal_after_a_head_request_carries_its_body(self):
        # Found by fuzzing (tests/fuzz/findings/002): the refusal used to go out as if it answered HEAD,
        # with a Content-Length and no body, so the client waited for bytes that never came.
        with self.daemon.raw() as conn:
            conn.send(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"POST /v1/jwt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")
            self.assertTrue(conn.readline().startswith(b"HTTP/1.1 "))
            while conn.readline() not in (b"\r\n", b""):
                pass  # HEAD: headers only
            self.assertError(conn.response(), 400, "bad_request")

    def test_a_chunked_body_alone_is_read(self):
        body = b'{"sub":"user-1"}'
        data = (b"POST /v1/jwt HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
                + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
        answer, _ = self.exchange(data, wait_for_close=False)
        self.assertEqual(answer.status, 200, answer)

    def test_content_length_with_transfer_encoding_is_refused_and_closed(self):
        # CL.TE smuggling: a proxy that believes one header and a server that believes the other would
        # see the GET as a second request.
        smuggled = b"0\r\n\r\nGET /v1/keys HTTP/1.1\r\nHost: localhost\r\n\r\n"
        post = b"POST /v1/jwt HTTP/1.1\r\nHost: localhost\r\n"
        for framing in (b"Content-Length: %d\r\nTransfer-Encoding: chunked" % len(smuggled),
                        b"Transfer-Encoding: chunked\r\nContent-Length: 4"):
            data = post + framing + b"\r\n\r\n" + smuggled
            with self.subTest(framing=framing):
                answer, closed = self.exchange(data)
                self.assertError(answer, 400, "bad_request")
                self.assertTrue(closed, "a second answer or an open connection means the GET was smuggled")
                self.assertStillServes()

    def test_conflicting_content_lengths_are_refused(self):
        answer, closed = self.exchange(b"POST /v1/jwt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 16\r\n"
                                       b"Content-Length: 17\r\n\r\n" + b'{"sub":"user-1"} ')
        self.assertError(answer, 400, "bad_request")
        self.assertTrue(closed)
        self.assertStillServes()

    def test_a_route_with_the_wrong_method_is_405(self):
        self.assertEqual(self.daemon.post("/v1/jwt", {"sub": "user-1"}).status, 200)
        for method, path, allow in (("GET", "/v1/jwt", "POST"), ("PUT", "/v1/jwt", "POST"),
                                    ("DELETE", "/v1/jwt", "POST"), ("GET", "/v1/jws", "POST"),
                                    ("GET", "/v1/sign", "POST"), ("POST", "/v1/keys", "GET"), ("POST", "/healthz", "GET")):
            with self.subTest(method=method, path=path):
                answer = self.daemon.request(method, path, body=b"{}" if method != "GET" else None)
                self.assertError(answer, 405, "method_not_allowed")
                self.assertEqual(answer.headers.get("allow"), allow, "RFC 9110 wants the methods the path takes")
                self.assertStillServes()

    def test_an_unknown_route_is_404(self):
        self.assertEqual(self.daemon.get("/v1/keys").status, 200)
        for path in ("/v1/nope", "/v1/jwt/", "/v1/JWT", "/", "/v1/keys/../admin/rotate", "/v2/jwt"):
            with self.subTest(path=path):
                self.assertError(self.daemon.get(path), 404, "not_found")
                self.assertStillServes()


if __name__ == "__main__":
    unittest.main()
