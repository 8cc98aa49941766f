"""Revocation and verification (docs/revocation.md), on the embedded SQLite store: POST /v1/revoke and
/v1/verify on the issuer socket, /v1/admin/revoke and /v1/admin/verify on the admin socket, hsmsignctl
revoke and verify, the audit lines, the metrics, and durability across restarts and kill -9.

Every token the daemon calls valid or revoked is also checked by python3-jwcrypto, code the project did
not write: a refusal is then the revocation's, not a broken token's. Forged tokens are made here with
python3-cryptography (software keys, alg none, HMAC keyed with the daemon's public key). The Redis
store, and with it `revocation_unavailable`, are tested elsewhere: an embedded store cannot become
unreachable.
"""
import hashlib
import hmac
import json
import subprocess
import threading
import time
import unittest

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwcrypto import jwk

from harness import (ISSUER, DaemonTestCase, Daemon, RawClient, UnixHTTPConnection, as_uid, b64url, b64url_decode,
                     client, flip_char, hsmsignctl_bin, http_request, verify_jwt)

OTHER_UID = 4242
OTHER_ISSUER = "https://other.example.com"
REASONS = ["malformed", "bad_header", "alg_not_allowed", "unknown_kid", "pending_kid", "bad_signature",
           "missing_claim", "wrong_issuer", "wrong_audience", "expired", "not_yet_valid", "revoked",
           "revocation_unavailable"]
# Reached only when the store cannot be reached: never with the embedded SQLite store.
NEEDS_REDIS = {"revocation_unavailable"}
LONGEST_TTL = 900  # the clients' max_ttl below


def wait_for(predicate, what, timeout=10.0, every=0.05):
    """predicate()'s first true value within the bound; fails the test naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(every)


def wait_past(unix_seconds):
    """Until the clock has passed `unix_seconds` by a whole second: a token issued at that second then has
    iat < now, so a not-before of "now" covers it (iat is whole seconds)."""
    wait_for(lambda: time.time() >= unix_seconds + 1, f"the clock to pass {unix_seconds}", timeout=5)


# --- tokens made here -----------------------------------------------------------------------------------

def compact(header, claims, sign):
    """header.payload.signature, with sign(signing_input) -> signature bytes."""
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    return signing_input + "." + b64url(sign(signing_input.encode()))


def es256_signer(key):
    def sign(data):
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return sign


def rs256_signer(key):
    return lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def hs256_signer(secret):
    return lambda data: hmac.new(secret, data, hashlib.sha256).digest()


SOFTWARE_EC = ec.generate_private_key(ec.SECP256R1())
SOFTWARE_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def claims_like(real, **changes):
    """The claims of a daemon token (decoded, not verified), with some replaced or (None) removed."""
    claims = json.loads(b64url_decode(real.split(".")[1]))
    for name, value in changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


class Api:
    """Requests to one daemon on both sockets, and what it wrote."""

    def __init__(self, daemon):
        self.daemon = daemon

    @property
    def admin_socket(self):
        return self.daemon.workdir / self.daemon.config["server"]["admin_socket"]

    def admin(self, path, body):
        conn = UnixHTTPConnection(self.admin_socket, timeout=30)
        try:
            return conn.call("POST", path, body)
        finally:
            conn.close()

    def verify(self, token, aud=None, admin=False):
        body = {"jwt": token, **({"aud": aud} if aud is not None else {})}
        answer = self.admin("/v1/admin/verify", body) if admin else self.daemon.post("/v1/verify", body)
        assert answer.status == 200, answer
        return answer.json

    def records(self):
        return [json.loads(line) for line in (self.daemon.workdir / "log" / "audit.jsonl").read_text().splitlines()]

    def metrics(self):
        """{(name, labels text): value} of /metrics."""
        out = {}
        for line in self.daemon.get("/metrics").body.decode().splitlines():
            if line and not line.startswith("#"):
                series, value = line.rsplit(" ", 1)
                name, _, labels = series.partition("{")
                out[(name, labels.rstrip("}"))] = float(value)
        return out

    def jws_token(self, claims):
        """A token signed by the daemon's own key over claims chosen here (POST /v1/jws signs any payload
        for a client with the jws operation): the way to get genuine signatures on claims that /v1/jwt
        never writes (no jti, a foreign iss, a future nbf, a past exp)."""
        answer = self.daemon.post("/v1/jws", {"payload": b64url(json.dumps(claims).encode())})
        assert answer.status == 200, answer
        return answer.json["jws"]


def pipelined(socket_path, requests, connections=8):
    """[(method, target, body)] spread over `connections` connections, each sending its share at once from
    a thread of its own and reading the answers; the answers in request order, and the seconds taken."""
    shares = [requests[i::connections] for i in range(connections)]
    answers = [None] * connections
    errors = []

    def run(i):
        try:
            with RawClient(socket_path, timeout=120) as conn:
                data = b"".join(http_request(m, t, json.dumps(b).encode(), ["Content-Type: application/json"])
                                for m, t, b in shares[i])
                sender = threading.Thread(target=conn.send, args=(data,))
                sender.start()
                answers[i] = [conn.response() for _ in shares[i]]
                sender.join()
        except Exception as e:  # reported below, in the test's thread
            errors.append(repr(e))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(connections)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - started
    assert not errors, errors
    ordered = [None] * len(requests)
    for i in range(connections):
        for k, answer in enumerate(answers[i]):
            ordered[i + k * connections] = answer
    return ordered, took


class RevocationTest(DaemonTestCase):
    # clock_tolerance "0s": a token the daemon issues with ttl 2 is expired 2 s later, not 12 (the
    # daemon writes iat = now, so waiting out exp is the only way to have one of its own JWTs expire).
    DAEMON = dict(keysets=[("default", "ES256"), ("second", "ES256"), ("spare", "ES256")],
                  clients=[client(keysets=["default", "second", "spare"]),
                           client(name="other", uids=[OTHER_UID], keysets=["default"], operations=["jwt"],
                                  issuer=OTHER_ISSUER)],
                  verify={"clock_tolerance": "0s"})

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.api = Api(cls.daemon)

    def jwt(self, **request):
        return self.daemon.jwt(**request)

    def other_jwt(self, sub):
        """A token of the other client (another issuer), asked for as its uid."""
        answer = as_uid(OTHER_UID, self.daemon.socket_path, [["POST", "/v1/jwt", {"sub": sub}]])[0]
        self.assertEqual(answer["status"], 200, answer)
        return json.loads(answer["body"])

    def assertGenuine(self, token, alg="ES256"):
        """python3-jwcrypto accepts the token's signature, exp and nbf: nothing is wrong with it."""
        return verify_jwt(token, self.daemon.jwks_json(), alg)

    def assertValid(self, token, **kw):
        verdict = self.api.verify(token, **kw)
        self.assertIs(verdict["valid"], True, verdict)
        return verdict

    def assertInvalid(self, token, reason, **kw):
        verdict = self.api.verify(token, **kw)
        self.assertIs(verdict["valid"], False, verdict)
        self.assertEqual(verdict["reason"], reason, verdict)
        self.assertIsInstance(verdict["message"], str)
        self.assertTrue(verdict["message"].strip(), verdict)
        return verdict

    def revoke(self, body):
        return self.daemon.post("/v1/revoke", body)

    def counter(self, name, labels=""):
        return self.api.metrics().get((name, labels), 0)

    def revoke_lines(self, **members):
        return [r for r in self.api.records()
                if r["event"] == "revoke" and all(r.get(k) == v for k, v in members.items())]

    def daemon_key(self, keyset="default"):
        keys = self.daemon.get("/v1/keys").json["keys"]
        kid = next(k["kid"] for k in keys if k["keyset"] == keyset and k["state"] == "active")
        jwks = json.loads(self.daemon.jwks_json())
        return kid, next(k for k in jwks["keys"] if k["kid"] == kid)

    # --- POST /v1/revoke --------------------------------------------------------------------------

    def test_a_token_revoked_by_itself_is_refused_by_verify_though_its_signature_is_good(self):
        t = self.jwt(sub="rev-by-jwt")
        verdict = self.assertValid(t["jwt"])
        header, claims = self.assertGenuine(t["jwt"])
        self.assertEqual({k: verdict[k] for k in ("alg", "kid", "keyset", "state")},
                         {"alg": "ES256", "kid": t["kid"], "keyset": "default", "state": "active"})
        self.assertEqual((verdict["header"], verdict["claims"]), (header, claims))
        self.assertEqual(self.assertValid(t["jwt"], admin=True), verdict)

        answer = self.revoke({"jwt": t["jwt"]})
        self.assertEqual(answer.status, 200, answer)
        self.assertEqual(answer.json, {"revoked": True, "kind": "jti", "iss": ISSUER, "jti": t["jti"], "exp": t["exp"]})
        refused = self.assertInvalid(t["jwt"], "revoked")
        self.assertEqual((refused["kid"], refused["claims"]["jti"]), (t["kid"], t["jti"]))
        self.assertInvalid(t["jwt"], "revoked", admin=True)
        # The token itself is still good: the refusal is the revocation's.
        self.assertGenuine(t["jwt"])
        # Once more is harmless, and another token of the same subject is not touched.
        self.assertEqual(self.revoke({"jwt": t["jwt"]}).json["revoked"], True)
        self.assertValid(self.jwt(sub="rev-by-jwt")["jwt"])

        lines = self.revoke_lines(jti=t["jti"])
        self.assertEqual(len(lines), 2, lines)
        self.assertEqual(list(lines[0]), ["seq", "time", "event", "uid", "gid", "pid", "client", "kind", "iss", "jti",
                                          "exp", "prev"])
        self.assertEqual({k: lines[0][k] for k in ("uid", "gid", "client", "kind", "iss", "exp")},
                         {"uid": 0, "gid": 0, "client": "e2e", "kind": "jti", "iss": ISSUER, "exp": t["exp"]})
        self.assertNotIn(t["jwt"].split(".")[2], json.dumps(lines), "the token itself is in the log")

    def test_a_token_revoked_by_jti_and_exp(self):
        t, kept = self.jwt(sub="rev-by-jti"), self.jwt(sub="rev-by-jti")
        answer = self.revoke({"jti": t["jti"], "exp": t["exp"]})
        self.assertEqual(answer.status, 200, answer)
        self.assertEqual(answer.json, {"revoked": True, "kind": "jti", "iss": ISSUER, "jti": t["jti"], "exp": t["exp"]})
        self.assertInvalid(t["jwt"], "revoked")
        self.assertGenuine(t["jwt"])
        self.assertValid(kept["jwt"])
        self.assertEqual(len(self.revoke_lines(jti=t["jti"], exp=t["exp"], client="e2e")), 1)

    def test_the_jti_form_caps_a_far_exp_and_answers_a_past_one_expired(self):
        before = int(time.time())
        answer = self.revoke({"jti": "far-future-jti", "exp": before + 10 ** 8})
        self.assertEqual(answer.status, 200, answer)
        self.assertEqual((answer.json["revoked"], answer.json["jti"], answer.json["iss"]), (True, "far-future-jti", ISSUER))
        # now + the longest max_ttl + clock_tolerance (0 s here): no token can live longer.
        self.assertGreaterEqual(answer.json["exp"], before + LONGEST_TTL)
        self.assertLessEqual(answer.json["exp"], int(time.time()) + LONGEST_TTL)
        for exp in (before - 1, 1, 0):
            with self.subTest(exp=exp):
                answer = self.revoke({"jti": f"past-jti{exp}", "exp": exp})
                self.assertEqual((answer.status, answer.json), (200, {"revoked": False, "reason": "expired"}))
                self.assertEqual(self.revoke_lines(jti=f"past-jti{exp}"), [], "an expired revocation was stored")

    def test_a_token_of_another_client_is_forbidden_and_nothing_is_stored(self):
        theirs = self.other_jwt("their-user")
        stored = self.counter("hsmsignd_revocations_total", 'kind="jti"')
        self.assertError(self.revoke({"jwt": theirs["jwt"]}), 403, "forbidden")
        self.assertEqual(self.counter("hsmsignd_revocations_total", 'kind="jti"'), stored)
        self.assertEqual(self.revoke_lines(jti=theirs["jti"]), [])
        self.assertEqual(self.assertValid(theirs["jwt"])["claims"]["iss"], OTHER_ISSUER)
        # A bare jti is scoped to the caller's issuer: theirs is not touched.
        answer = self.revoke({"jti": theirs["jti"], "exp": theirs["exp"]})
        self.assertEqual((answer.status, answer.json["iss"]), (200, ISSUER), answer)
        self.assertValid(theirs["jwt"])
        # Its own client may revoke it.
        answer = as_uid(OTHER_UID, self.daemon.socket_path, [["POST", "/v1/revoke", {"jwt": theirs["jwt"]}]])[0]
        self.assertEqual(answer["status"], 200, answer)
        self.assertEqual(json.loads(answer["body"]), {"revoked": True, "kind": "jti", "iss": OTHER_ISSUER,
                                                      "jti": theirs["jti"], "exp": theirs["exp"]})
        self.assertInvalid(theirs["jwt"], "revoked")
        self.assertGenuine(theirs["jwt"])
        self.assertEqual([(r["uid"], r["client"]) for r in self.revoke_lines(jti=theirs["jti"], iss=OTHER_ISSUER)],
                         [(OTHER_UID, "other")])

    def test_forged_tokens_are_answered_not_revoked_and_leave_the_genuine_one_valid(self):
        genuine = self.jwt(sub="forged-victim")
        head, payload, signature = genuine["jwt"].split(".")
        kid, _ = self.daemon_key()
        forgeries = {
            "bad_signature": [head + "." + payload + "." + flip_char(signature, 10),
                              # the same claims, the daemon's kid, a software key's signature
                              compact({"alg": "ES256", "kid": kid, "typ": "JWT"}, claims_like(genuine["jwt"]),
                                      es256_signer(SOFTWARE_EC))],
            "unknown_kid": [compact({"alg": "ES256", "kid": "A" * 43}, claims_like(genuine["jwt"]),
                                    es256_signer(SOFTWARE_EC))],
            "alg_not_allowed": [compact({"alg": "RS256", "kid": kid}, claims_like(genuine["jwt"]),
                                        rs256_signer(SOFTWARE_RSA))],
        }
        stored = self.counter("hsmsignd_revocations_total", 'kind="jti"')
        for reason, tokens in forgeries.items():
            for token in tokens:
                with self.subTest(reason=reason, token=token[-20:]):
                    answer = self.revoke({"jwt": token})
                    self.assertEqual((answer.status, answer.json), (200, {"revoked": False, "reason": reason}))
                    self.assertInvalid(token, reason)
        self.assertEqual(self.counter("hsmsignd_revocations_total", 'kind="jti"'), stored)
        self.assertEqual(self.revoke_lines(jti=genuine["jti"]), [])
        self.assertValid(genuine["jwt"])

    def test_the_token_form_refuses_only_a_token_that_does_not_parse(self):
        # The spec's 400 is for a token that does not parse: three base64url parts, header and payload JSON
        # objects, a string jti, a string iss, an integer exp. Anything else is judged: a header member the
        # daemon never writes makes it not the daemon's (200, not revoked, bad_header); a token of the
        # daemon's own signature (POST /v1/jws) that lacks an aud still parses, and is stored.
        t = self.jwt(sub="parses")
        kid, _ = self.daemon_key()
        for header in ({"alg": "ES256", "kid": kid, "jku": "https://evil.example/jwks"}, {"alg": "ES256"}):
            with self.subTest(header=header):
                token = compact(header, claims_like(t["jwt"]), es256_signer(SOFTWARE_EC))
                answer = self.revoke({"jwt": token})
                self.assertEqual((answer.status, answer.body and answer.json), (200, {"revoked": False, "reason": "bad_header"}))
        no_aud = self.api.jws_token(claims_like(t["jwt"], aud=None, jti="parses-without-aud"))
        answer = self.revoke({"jwt": no_aud})
        self.assertEqual((answer.status, answer.body and answer.json),
                         (200, {"revoked": True, "kind": "jti", "iss": ISSUER, "jti": "parses-without-aud", "exp": t["exp"]}))

    def test_an_expired_token_is_not_revoked(self):
        t = self.jwt(sub="short-lived", ttl=2)
        self.assertValid(t["jwt"])
        wait_for(lambda: self.api.verify(t["jwt"]).get("reason") == "expired", "the 2 s token to be answered expired",
                 timeout=6)
        answer = self.revoke({"jwt": t["jwt"]})
        self.assertEqual((answer.status, answer.json), (200, {"revoked": False, "reason": "expired"}))
        answer = self.revoke({"jti": t["jti"], "exp": t["exp"]})
        self.assertEqual((answer.status, answer.json), (200, {"revoked": False, "reason": "expired"}))
        self.assertEqual(self.revoke_lines(jti=t["jti"]), [])

    def test_malformed_revocations_are_refused_and_store_nothing(self):
        t = self.jwt(sub="malformed-bodies")
        no_jti = self.api.jws_token(claims_like(t["jwt"], jti=None))
        iss_number = self.api.jws_token(claims_like(t["jwt"], iss=7))
        exp_text = self.api.jws_token(claims_like(t["jwt"], exp=str(t["exp"])))
        stored = sum(v for (n, _), v in self.api.metrics().items() if n == "hsmsignd_revocations_total")
        for body in ({}, {"jwt": t["jwt"], "extra": 1}, {"jwt": t["jwt"], "jti": t["jti"], "exp": t["exp"]},
                     {"jwt": t["jwt"], "exp": t["exp"]}, {"jwt": 5}, {"jwt": None}, {"jwt": [t["jwt"]]},
                     {"jti": t["jti"]}, {"exp": t["exp"]}, {"jti": 5, "exp": t["exp"]},
                     {"jti": t["jti"], "exp": str(t["exp"])}, {"jti": t["jti"], "exp": 1.5},
                     {"jti": t["jti"], "exp": True}, {"jti": "", "exp": t["exp"]},
                     {"jti": "x" * 257, "exp": t["exp"]}, {"jti": t["jti"], "exp": t["exp"], "iss": ISSUER},
                     {"jwt": "a.b"}, {"jwt": "a.b.c"}, {"jwt": "not a token"}, {"jwt": ""},
                     {"jwt": no_jti}, {"jwt": iss_number}, {"jwt": exp_text}, [t["jwt"]]):
            with self.subTest(body=json.dumps(body)[:80]):
                self.assertError(self.revoke(body), 400, "bad_request")
        for data in (b"not json", b"{", b'{"jti": "a", "jti": "b", "exp": 1}', b'{"jti": "\xff", "exp": 1}'):
            with self.subTest(data=data):
                answer = self.daemon.post("/v1/revoke", data, headers={"Content-Type": "application/json"})
                self.assertError(answer, 400, "bad_request")
        # A jti of 256 characters is the longest allowed.
        self.assertEqual(self.revoke({"jti": "y" * 256, "exp": t["exp"]}).json["revoked"], True)
        stored += 1
        # A body over max_body is refused before it is read.
        answer = self.revoke({"jti": "z" * 70000, "exp": t["exp"]})
        self.assertError(answer, 413, "too_large")
        self.assertEqual(sum(v for (n, _), v in self.api.metrics().items() if n == "hsmsignd_revocations_total"), stored)
        self.assertValid(t["jwt"])

    def test_malformed_verifications_are_refused(self):
        t = self.jwt(sub="malformed-verify")
        for body in ({}, {"jwt": t["jwt"], "extra": 1}, {"jwt": 5}, {"jwt": None}, {"jwt": t["jwt"], "aud": 5},
                     {"jwt": t["jwt"], "aud": ["api-gateway"]}, {"aud": "api-gateway"}, [t["jwt"]]):
            with self.subTest(body=json.dumps(body)[:80]):
                self.assertError(self.daemon.post("/v1/verify", body), 400, "bad_request")
                self.assertError(self.api.admin("/v1/admin/verify", body), 400, "bad_request")
        self.assertError(self.daemon.post("/v1/verify", b"{", headers={"Content-Type": "application/json"}), 400,
                         "bad_request")

    # --- POST /v1/verify ----------------------------------------------------------------------------

    def test_every_reason_of_verify_is_reached(self):
        t = self.jwt(sub="reasons")
        head, payload, signature = t["jwt"].split(".")
        kid, public = self.daemon_key()
        now = int(time.time())
        pending = self.daemon.ctl("rotate", "spare")
        self.assertEqual(pending.returncode, 0, pending)
        pending_kid = pending.stdout.strip()
        self.assertIn(pending_kid, {k["kid"] for k in self.daemon.get("/v1/keys").json["keys"] if k["state"] == "pending"})
        revoked = self.jwt(sub="reasons-revoked")
        self.assertEqual(self.revoke({"jwt": revoked["jwt"]}).json["revoked"], True)
        pem = jwk.JWK(**public).export_to_pem()
        soft = es256_signer(SOFTWARE_EC)
        cases = [
            ("malformed", t["jwt"] + ".x"), ("malformed", "a.b"), ("malformed", "not-a-token"),
            ("malformed", b64url(b"[1]") + "." + payload + "." + signature),
            ("malformed", head + "." + b64url(b"not json") + "." + signature),
            ("malformed", head + "." + payload + ".!!!"),
            ("bad_header", compact({"alg": "ES256", "kid": kid, "jku": "https://evil.example/jwks"},
                                   claims_like(t["jwt"]), soft)),
            ("bad_header", compact({"alg": "ES256", "kid": kid, "crit": ["exp"]}, claims_like(t["jwt"]), soft)),
            ("bad_header", compact({"alg": "ES256", "kid": kid, "x5u": "https://evil.example/c"},
                                   claims_like(t["jwt"]), soft)),
            ("bad_header", compact({"alg": "ES256"}, claims_like(t["jwt"]), soft)),
            ("bad_header", compact({"alg": "ES256", "kid": 5}, claims_like(t["jwt"]), soft)),
            ("alg_not_allowed", compact({"alg": "none", "kid": kid}, claims_like(t["jwt"]), lambda data: b"")),
            ("alg_not_allowed", compact({"alg": "HS256", "kid": kid}, claims_like(t["jwt"]), hs256_signer(pem))),
            ("alg_not_allowed", compact({"alg": "RS256", "kid": kid}, claims_like(t["jwt"]), rs256_signer(SOFTWARE_RSA))),
            ("alg_not_allowed", compact({"kid": kid}, claims_like(t["jwt"]), soft)),
            ("unknown_kid", compact({"alg": "ES256", "kid": "A" * 43}, claims_like(t["jwt"]), soft)),
            ("pending_kid", compact({"alg": "ES256", "kid": pending_kid}, claims_like(t["jwt"]), soft)),
            ("bad_signature", head + "." + payload + "." + flip_char(signature, 5)),
            ("bad_signature", head + "." + b64url(json.dumps(claims_like(t["jwt"], sub="admin")).encode()) + "." + signature),
            ("missing_claim", self.api.jws_token(claims_like(t["jwt"], jti=None))),
            ("missing_claim", self.api.jws_token(claims_like(t["jwt"], aud=None))),
            ("missing_claim", self.api.jws_token(claims_like(t["jwt"], exp=str(t["exp"])))),
            ("wrong_issuer", self.api.jws_token(claims_like(t["jwt"], iss="https://evil.example"))),
            ("expired", self.api.jws_token(claims_like(t["jwt"], iat=now - 100, nbf=now - 100, exp=now - 40))),
            # /v1/jwt never writes a future nbf or iat; a genuine signature over one comes from /v1/jws.
            ("not_yet_valid", self.api.jws_token(claims_like(t["jwt"], iat=now + 3600, nbf=now + 3600, exp=now + 3900))),
            ("not_yet_valid", self.api.jws_token(claims_like(t["jwt"], nbf=now + 3600, exp=now + 3900))),
            ("revoked", revoked["jwt"]),
        ]
        before = self.api.metrics()
        counted = {}
        for reason, token in cases:
            with self.subTest(reason=reason, token=token[:60]):
                verdict = self.assertInvalid(token, reason)
                counted[reason] = counted.get(reason, 0) + 1
                # Nothing unsigned is echoed: claims only once the signature verified.
                signed = REASONS.index(reason) > REASONS.index("bad_signature")
                self.assertEqual("claims" in verdict, signed, verdict)
                if reason in ("wrong_audience", "expired", "not_yet_valid", "revoked", "missing_claim",
                              "wrong_issuer", "bad_signature"):
                    self.assertEqual((verdict["kid"], verdict["keyset"], verdict["state"]), (kid, "default", "active"))
        self.assertInvalid(t["jwt"], "wrong_audience", aud="payments")
        self.assertInvalid(t["jwt"], "wrong_audience", aud="billing")  # t's aud is "api-gateway" alone
        counted["wrong_audience"] = 2
        self.assertValid(t["jwt"], aud="api-gateway")
        self.assertValid(self.jwt(sub="reasons", aud=["api-gateway", "billing"])["jwt"], aud="billing")
        self.assertEqual(set(counted), set(REASONS) - NEEDS_REDIS, "every reason the embedded store can give")
        after = self.api.metrics()
        for reason in REASONS:
            key = ("hsmsignd_verifications_total", f'result="{reason}"')
            self.assertEqual(after.get(key, 0) - before.get(key, 0), counted.get(reason, 0), reason)
        key = ("hsmsignd_verifications_total", 'result="valid"')
        self.assertEqual(after.get(key, 0) - before.get(key, 0), 2)

    def test_algorithm_confusion_is_refused_counted_and_audited_with_the_peer(self):
        t = self.jwt(sub="confusion")
        kid, public = self.daemon_key()
        pem = jwk.JWK(**public).export_to_pem()
        attempts = [("none", compact({"alg": "none", "kid": kid}, claims_like(t["jwt"]), lambda data: b"")),
                    ("HS256", compact({"alg": "HS256", "kid": kid}, claims_like(t["jwt"]), hs256_signer(pem))),
                    ("RS256", compact({"alg": "RS256", "kid": kid}, claims_like(t["jwt"]), rs256_signer(SOFTWARE_RSA))),
                    ("X" * 32, compact({"alg": "X" * 100, "kid": kid}, claims_like(t["jwt"]), lambda data: b"sig"))]
        before = self.counter("hsmsignd_algorithm_confusion_total")
        seq = self.api.records()[-1]["seq"]
        for alg, token in attempts:
            with self.subTest(alg=alg):
                verdict = self.assertInvalid(token, "alg_not_allowed")
                self.assertEqual(verdict["alg"], alg)
                self.assertNotIn("claims", verdict)
        other = as_uid(OTHER_UID, self.daemon.socket_path, [["POST", "/v1/verify", {"jwt": attempts[1][1]}]])[0]
        self.assertEqual(json.loads(other["body"])["reason"], "alg_not_allowed", other)
        self.assertInvalid(attempts[0][1], "alg_not_allowed", admin=True)
        self.assertEqual(self.counter("hsmsignd_algorithm_confusion_total") - before, len(attempts) + 2)

        def lines():
            found = [r for r in self.api.records() if r["seq"] > seq and r["event"] == "alg_confusion"]
            return found if len(found) >= len(attempts) + 2 else None
        found = wait_for(lines, "the alg_confusion audit lines")
        self.assertEqual(len(found), len(attempts) + 2, found)
        for record, (alg, _) in zip(found, attempts):
            self.assertEqual({k: record.get(k) for k in ("uid", "gid", "client", "alg", "kid", "route")},
                             {"uid": 0, "gid": 0, "client": "e2e", "alg": alg, "kid": kid, "route": "/v1/verify"})
            self.assertIsInstance(record["pid"], int)
        self.assertEqual({k: found[-2].get(k) for k in ("uid", "client", "alg", "route")},
                         {"uid": OTHER_UID, "client": "other", "alg": "HS256", "route": "/v1/verify"})
        self.assertEqual({k: found[-1].get(k) for k in ("uid", "operation", "alg", "route")},
                         {"uid": 0, "operation": "verify", "alg": "none", "route": "/v1/admin/verify"})
        self.assertNotIn("client", found[-1])
        self.assertNotIn(t["jwt"].split(".")[1], json.dumps(found), "the token is in the log")

    # --- POST /v1/admin/revoke ---------------------------------------------------------------------

    def admin_revoke(self, body, status=200):
        answer = self.api.admin("/v1/admin/revoke", body)
        self.assertEqual(answer.status, status, answer)
        return answer.json

    def test_admin_revoke_by_subject_covers_tokens_issued_before_only(self):
        early, bob = self.jwt(sub="alice"), self.jwt(sub="bob")
        theirs = self.other_jwt("alice")
        wait_past(max(early["iat"], theirs["iat"]))
        answer = self.admin_revoke({"sub": "alice"})
        entries = answer["revoked"]
        self.assertEqual(sorted(e["iss"] for e in entries), sorted([ISSUER, OTHER_ISSUER]), answer)
        now = int(time.time())
        for e in entries:
            self.assertEqual((e["kind"], e["name"]), ("subject", "alice"), e)
            self.assertIn(e["at"], (now - 1, now), e)
            self.assertEqual(e["expires"], e["at"] + LONGEST_TTL, e)  # + clock_tolerance, 0 s here
        late = self.jwt(sub="alice")
        self.assertInvalid(early["jwt"], "revoked")
        self.assertInvalid(theirs["jwt"], "revoked")
        self.assertGenuine(early["jwt"])
        self.assertValid(late["jwt"])
        self.assertValid(bob["jwt"])
        lines = self.revoke_lines(sub="alice", kind="subject")
        self.assertEqual(len(lines), 2, lines)
        self.assertEqual(list(lines[0]), ["seq", "time", "event", "uid", "gid", "pid", "operation", "kind", "iss", "sub",
                                          "before", "prev"])
        self.assertEqual({(r["uid"], r["operation"], r["iss"], r["before"]) for r in lines},
                         {(0, "revoke", e["iss"], e["at"]) for e in entries})

    def test_admin_revoke_by_subject_of_one_issuer(self):
        ours, theirs = self.jwt(sub="carol"), self.other_jwt("carol")
        wait_past(max(ours["iat"], theirs["iat"]))
        answer = self.admin_revoke({"sub": "carol", "iss": OTHER_ISSUER})
        self.assertEqual([(e["kind"], e["iss"], e["name"]) for e in answer["revoked"]], [("subject", OTHER_ISSUER, "carol")])
        self.assertInvalid(theirs["jwt"], "revoked")
        self.assertValid(ours["jwt"])

    def test_admin_revoke_by_subject_before_an_instant_in_the_past(self):
        t = self.jwt(sub="dave")
        # before = iat: the token (iat == before) is not issued *before* it.
        self.assertEqual(self.admin_revoke({"sub": "dave", "before": t["iat"]})["revoked"][0]["at"], t["iat"])
        self.assertValid(t["jwt"])
        wait_past(t["iat"])  # iat + 1 is not in the future any more
        self.admin_revoke({"sub": "dave", "before": t["iat"] + 1})
        self.assertInvalid(t["jwt"], "revoked")
        # In the future (beyond clock_tolerance, 0 s) it would revoke tokens not yet issued: refused.
        answer = self.api.admin("/v1/admin/revoke", {"sub": "dave", "before": int(time.time()) + 120})
        self.assertError(answer, 400, "bad_request")

    def test_admin_revoke_by_keyset(self):
        signed, other_keyset = self.jwt(sub="k1", keyset="second"), self.jwt(sub="k1", keyset="default")
        wait_past(signed["iat"])
        answer = self.admin_revoke({"keyset": "second"})
        self.assertEqual(len(answer["revoked"]), 1, answer)
        entry = answer["revoked"][0]
        self.assertEqual((entry["kind"], entry["name"]), ("keyset", "second"))
        self.assertNotIn("iss", entry)
        after = self.jwt(sub="k1", keyset="second")
        self.assertInvalid(signed["jwt"], "revoked")
        self.assertGenuine(signed["jwt"])
        self.assertValid(other_keyset["jwt"])
        self.assertValid(after["jwt"])
        line = self.revoke_lines(kind="keyset", keyset="second")[-1]
        self.assertEqual(list(line), ["seq", "time", "event", "uid", "gid", "pid", "operation", "kind", "keyset", "before",
                                      "prev"])
        self.assertEqual(line["before"], entry["at"])
        self.assertError(self.api.admin("/v1/admin/revoke", {"keyset": "no-such-keyset"}), 404, "not_found")

    def test_admin_revoke_by_jti_without_iss_is_for_every_issuer(self):
        ours, theirs = self.jwt(sub="erin"), self.other_jwt("erin")
        now = int(time.time())
        answer = self.admin_revoke({"jti": ours["jti"]})
        self.assertEqual(sorted((e["kind"], e["iss"], e["name"]) for e in answer["revoked"]),
                         sorted([("jti", ISSUER, ours["jti"]), ("jti", OTHER_ISSUER, ours["jti"])]))
        for e in answer["revoked"]:  # exp absent: now + the longest max_ttl
            self.assertGreaterEqual(e["at"], now + LONGEST_TTL)
            self.assertLessEqual(e["at"], int(time.time()) + LONGEST_TTL)
        self.assertInvalid(ours["jwt"], "revoked")
        self.assertValid(theirs["jwt"])
        answer = self.admin_revoke({"jti": theirs["jti"], "iss": OTHER_ISSUER, "exp": theirs["exp"]})
        self.assertEqual([(e["kind"], e["iss"], e["name"], e["at"]) for e in answer["revoked"]],
                         [("jti", OTHER_ISSUER, theirs["jti"], theirs["exp"])])
        self.assertInvalid(theirs["jwt"], "revoked")
        # The token form, for any issuer: no 403 on the admin socket.
        another = self.other_jwt("erin")
        answer = self.admin_revoke({"jwt": another["jwt"]})
        self.assertEqual(answer, {"revoked": True, "kind": "jti", "iss": OTHER_ISSUER, "jti": another["jti"],
                                  "exp": another["exp"]})
        self.assertInvalid(another["jwt"], "revoked")
        forged = flip_char(another["jwt"], len(another["jwt"]) - 10)
        self.assertEqual(self.admin_revoke({"jwt": forged}), {"revoked": False, "reason": "bad_signature"})

    def test_malformed_admin_revocations_are_refused(self):
        t = self.jwt(sub="admin-malformed")
        for body in ({}, {"jti": "x", "sub": "y"}, {"sub": "y", "keyset": "default"}, {"jwt": t["jwt"], "jti": "x"},
                     {"sub": "y", "exp": 1}, {"keyset": "default", "iss": ISSUER}, {"jti": "x", "before": 1},
                     {"before": 1}, {"iss": ISSUER}, {"sub": 5}, {"sub": "y", "before": "now"},
                     {"sub": "y", "before": 1.5}, {"jti": "x", "iss": 5}, {"keyset": ["default"]},
                     {"jwt": "a.b.c"}, {"jti": "x" * 257}, {"sub": "y", "surprise": True}):
            with self.subTest(body=json.dumps(body)[:80]):
                self.assertError(self.api.admin("/v1/admin/revoke", body), 400, "bad_request")
        self.assertValid(t["jwt"])

    # --- hsmsignctl --------------------------------------------------------------------------------

    def ctl(self, *args, stdin=None):
        return subprocess.run([hsmsignctl_bin(), "--config", str(self.daemon.config_path), *args], input=stdin,
                              env=self.daemon.token_env, capture_output=True, text=True, timeout=30)

    def test_hsmsignctl_verify_prints_the_token_and_the_verdict(self):
        t = self.jwt(sub="ctl-verify")
        out = self.ctl("verify", t["jwt"])
        self.assertEqual(out.returncode, 0, out)
        header, claims = self.assertGenuine(t["jwt"])
        self.assertIn("header: " + json.dumps(header, indent=2, sort_keys=True), out.stdout)
        self.assertIn("claims: " + json.dumps(claims, indent=2, sort_keys=True), out.stdout)
        self.assertIn(f"key: {t['kid']} (default, active)\n", out.stdout)
        self.assertIn("revoked: no\n", out.stdout)
        self.assertEqual(out.stdout.splitlines()[-1], "valid")
        self.assertEqual(out.stderr, "")

        out = self.ctl("verify", "-", stdin=t["jwt"] + "\n")
        self.assertEqual((out.returncode, out.stdout.splitlines()[-1]), (0, "valid"), out)
        out = self.ctl("verify", t["jwt"], "--aud", "payments")
        self.assertEqual(out.returncode, 1, out)
        self.assertRegex(out.stdout.splitlines()[-1], r"^INVALID: wrong_audience: .+")
        out = self.ctl("verify", "--json", t["jwt"])
        self.assertEqual(out.returncode, 0, out)
        self.assertEqual(json.loads(out.stdout), self.api.verify(t["jwt"], admin=True))

        head, payload, signature = t["jwt"].split(".")
        out = self.ctl("verify", head + "." + payload + "." + flip_char(signature, 4))
        self.assertEqual(out.returncode, 1, out)
        self.assertRegex(out.stdout.splitlines()[-1], r"^INVALID: bad_signature: .+")
        self.assertNotIn("claims:", out.stdout, "unsigned claims were shown")
        self.assertIn("revoked: not checked", out.stdout)
        self.assertNotIn("revoked: no\n", out.stdout)

        self.assertEqual(self.revoke({"jwt": t["jwt"]}).json["revoked"], True)
        out = self.ctl("verify", t["jwt"])
        self.assertEqual(out.returncode, 1, out)
        self.assertIn("revoked: yes\n", out.stdout)
        self.assertRegex(out.stdout.splitlines()[-1], r"^INVALID: revoked: .+")
        out = self.ctl("verify", "--json", t["jwt"])
        self.assertEqual((out.returncode, json.loads(out.stdout)["reason"]), (1, "revoked"), out)

        out = self.ctl("verify", "not-a-token")
        self.assertEqual(out.returncode, 1, out)
        self.assertRegex(out.stdout.splitlines()[-1], r"^INVALID: malformed: .+")
        for args in (("verify",), ("verify", t["jwt"], "--bogus"), ("verify", t["jwt"], t["jwt"]), ("verify", "--aud")):
            with self.subTest(args=args):
                out = self.ctl(*args)
                self.assertEqual(out.returncode, 2, out)
                self.assertIn("usage:", out.stderr)

    def test_hsmsignctl_revoke_every_form(self):
        def rfc3339(unix):
            return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix))

        t = self.jwt(sub="ctl-revoke")
        out = self.ctl("revoke", t["jwt"])
        self.assertEqual(out.returncode, 0, out)
        self.assertEqual(out.stdout, f"revoked jti {t['jti']} of {ISSUER} (exp {rfc3339(t['exp'])})\n")
        self.assertInvalid(t["jwt"], "revoked")

        t = self.jwt(sub="ctl-revoke")
        out = self.ctl("revoke", "-", stdin="  " + t["jwt"] + "\n")
        self.assertEqual(out.returncode, 0, out)
        self.assertInvalid(t["jwt"], "revoked")

        t = self.jwt(sub="ctl-revoke")
        out = self.ctl("revoke", "--jti", t["jti"], "--iss", ISSUER, "--exp", str(t["exp"]))
        self.assertEqual(out.returncode, 0, out)
        self.assertEqual(out.stdout.splitlines(), [f"revoked jti {t['jti']} of {ISSUER} (exp {rfc3339(t['exp'])}; kept "
                                                   f"until {rfc3339(t['exp'])})"])
        self.assertInvalid(t["jwt"], "revoked")

        t = self.jwt(sub="ctl-revoke")
        out = self.ctl("revoke", "--jti", t["jti"], "--exp", rfc3339(t["exp"]))
        self.assertEqual((out.returncode, len(out.stdout.splitlines())), (0, 2), out)  # both issuers
        self.assertInvalid(t["jwt"], "revoked")

        # --before as RFC 3339, with an offset, and as unix seconds: the same instant each time.
        t = self.jwt(sub="ctl-subject")
        instant = t["iat"] + 1
        wait_past(t["iat"])
        offset = time.strftime("%Y-%m-%dT%H:%M:%S+01:00", time.gmtime(instant + 3600))
        for before in (rfc3339(instant), offset, str(instant), rfc3339(instant)[:-1] + ".5Z"):
            with self.subTest(before=before):
                out = self.ctl("revoke", "--sub", "ctl-subject", "--iss", ISSUER, "--before", before)
                self.assertEqual(out.returncode, 0, out)
                self.assertEqual(out.stdout.splitlines()[0].split("; ")[0],
                                 f"revoked subject ctl-subject of {ISSUER}: tokens issued before {rfc3339(instant)}")
        self.assertInvalid(t["jwt"], "revoked")

        t = self.jwt(sub="ctl-keyset", keyset="spare")
        wait_past(t["iat"])
        out = self.ctl("revoke", "--keyset", "spare", "--before", str(t["iat"] + 1))
        self.assertEqual(out.returncode, 0, out)
        self.assertTrue(out.stdout.startswith(f"revoked keyset spare: tokens issued before {rfc3339(t['iat'] + 1)}"), out)
        self.assertInvalid(t["jwt"], "revoked")
        self.assertValid(self.jwt(sub="ctl-keyset", keyset="spare")["jwt"])

        # Refused or not stored: exit 1, saying why.
        head, payload, signature = t["jwt"].split(".")
        out = self.ctl("revoke", head + "." + payload + "." + flip_char(signature, 7))
        self.assertEqual((out.returncode, out.stdout), (1, ""), out)
        self.assertIn("not revoked: bad_signature", out.stderr)
        out = self.ctl("revoke", "--keyset", "no-such-keyset")
        self.assertEqual(out.returncode, 1, out)
        self.assertIn("404", out.stderr)
        out = self.ctl("revoke", "--sub", "x", "--before", str(int(time.time()) + 3600))
        self.assertEqual(out.returncode, 1, out)
        self.assertIn("400", out.stderr)
        for args in (("revoke",), ("revoke", "--jti", "a", "--sub", "b"), ("revoke", t["jwt"], "--jti", "a"),
                     ("revoke", "--sub", "x", "--exp", "5"), ("revoke", "--keyset", "spare", "--iss", ISSUER),
                     ("revoke", "--sub", "x", "--before", "yesterday"), ("revoke", "--sub", "x", "--before",
                                                                         "2026-13-01T00:00:00Z"),
                     ("revoke", "--jti"), ("revoke", "--bogus")):
            with self.subTest(args=args):
                out = self.ctl(*args)
                self.assertEqual(out.returncode, 2, out)
                self.assertIn("usage:", out.stderr)

    # --- the record and the counters ---------------------------------------------------------------

    def test_zz_every_stored_revocation_has_its_audit_line_and_the_log_verifies(self):
        # Named to run last in this class: it accounts for everything the tests before it stored.
        stored = sum(v for (n, _), v in self.api.metrics().items() if n == "hsmsignd_revocations_total")
        lines = self.revoke_lines()
        self.assertGreater(stored, 10)
        self.assertEqual(len(lines), stored, "one revoke line per stored entry")
        by_kind = {}
        for r in lines:
            by_kind[r["kind"]] = by_kind.get(r["kind"], 0) + 1
        for kind in ("jti", "subject", "keyset"):
            self.assertEqual(by_kind.get(kind, 0), self.counter("hsmsignd_revocations_total", f'kind="{kind}"'), kind)
        out = self.ctl("checkpoint")
        self.assertEqual(out.returncode, 0, out)
        out = subprocess.run([hsmsignctl_bin(), "audit", "verify", str(self.daemon.workdir / "log" / "audit.jsonl")],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out)
        self.assertIn("0 lines after the last checkpoint", out.stdout)

    def test_metrics_count_verifications_by_result_and_revocations_by_kind(self):
        t = self.jwt(sub="metrics")
        before = self.api.metrics()
        self.assertValid(t["jwt"])
        self.assertInvalid("x.y.z", "malformed")
        head, payload, signature = t["jwt"].split(".")
        self.assertInvalid(head + "." + payload + "." + flip_char(signature, 3), "bad_signature")
        self.assertEqual(self.revoke({"jwt": t["jwt"]}).json["revoked"], True)
        self.assertInvalid(t["jwt"], "revoked", admin=True)
        after = self.api.metrics()

        def grew(name, labels=""):
            return after.get((name, labels), 0) - before.get((name, labels), 0)
        for result, n in (("valid", 1), ("malformed", 1), ("bad_signature", 1), ("revoked", 1), ("expired", 0)):
            self.assertEqual(grew("hsmsignd_verifications_total", f'result="{result}"'), n, result)
        self.assertEqual(grew("hsmsignd_revocations_total", 'kind="jti"'), 1)
        self.assertEqual(grew("hsmsignd_revocations_total", 'kind="subject"'), 0)
        self.assertEqual(grew("hsmsignd_revocation_entries"), 1)
        self.assertEqual(after[("hsmsignd_revocation_store_up", "")], 1)
        self.assertEqual(after[("hsmsignd_revocation_store_outages_total", "")], 0)
        self.assertEqual(grew("hsmsignd_requests_total", 'route="verify",status="200"'), 3)
        self.assertEqual(grew("hsmsignd_requests_total", 'route="revoke",status="200"'), 1)
        self.assertEqual(grew("hsmsignd_requests_total", 'route="admin",status="200"'), 1)
        self.assertEqual(self.daemon.get("/healthz").json, {"status": "ok"})


class DurabilityTest(unittest.TestCase):
    """A 200 means durable: revocations survive a restart, and a kill -9 right after the answer."""

    def setUp(self):
        self.daemon = Daemon()
        self.addCleanup(self.daemon.cleanup)
        self.daemon.start()
        self.api = Api(self.daemon)

    def assertRevoked(self, tokens):
        jwks = self.daemon.jwks_json()
        for t in tokens:
            verdict = self.api.verify(t["jwt"])
            self.assertEqual((verdict["valid"], verdict.get("reason")), (False, "revoked"), verdict)
            verify_jwt(t["jwt"], jwks, "ES256")

    def test_revocations_survive_a_restart_and_a_kill(self):
        d = self.daemon
        by_jwt, by_jti, of_subject, untouched = (d.jwt(sub="s1"), d.jwt(sub="s2"), d.jwt(sub="s3"), d.jwt(sub="s4"))
        self.assertTrue(d.post("/v1/revoke", {"jwt": by_jwt["jwt"]}).json["revoked"])
        self.assertTrue(d.post("/v1/revoke", {"jti": by_jti["jti"], "exp": by_jti["exp"]}).json["revoked"])
        wait_past(of_subject["iat"])
        self.assertEqual(self.api.admin("/v1/admin/revoke", {"sub": "s3"}).status, 200)
        self.assertEqual(d.stop(), 0)
        d.start()
        self.assertRevoked([by_jwt, by_jti, of_subject])
        self.assertTrue(self.api.verify(untouched["jwt"])["valid"])
        self.assertEqual(self.api.metrics()[("hsmsignd_revocation_entries", "")], 3)

        last = d.jwt(sub="s5")
        self.assertTrue(d.post("/v1/revoke", {"jwt": last["jwt"]}).json["revoked"])
        d.kill()  # at once: the 200 was the promise
        d.start()
        self.assertRevoked([by_jwt, by_jti, of_subject, last])
        self.assertTrue(self.api.verify(untouched["jwt"])["valid"])
        out = d.ctl("audit", "verify", str(d.workdir / "log" / "audit.jsonl"))
        self.assertEqual(out.returncode, 0, out)

    def test_a_disk_that_refuses_writes_gets_503_and_revocation_works_again_after_it(self):
        # RLIMIT_FSIZE below the files' sizes: every write to the audit log and to the SQLite store fails
        # (EFBIG), as on a full disk. Nothing may be acknowledged meanwhile, and both must come back by
        # themselves once writes work again, as the audit log does (test_audit.DurabilityTest).
        from test_audit import prlimit_fsize
        d = self.daemon
        before = d.jwt(sub="before-the-outage")
        self.assertTrue(d.post("/v1/revoke", {"jwt": before["jwt"]}).json["revoked"])
        pid = d.process.pid
        self.addCleanup(lambda: d.process and prlimit_fsize(d.process.pid, "unlimited"))
        prlimit_fsize(pid, 64)
        refused = [d.post("/v1/revoke", {"jti": f"during-{i}", "exp": int(time.time()) + 60}) for i in range(3)]
        refused.append(self.api.admin("/v1/admin/revoke", {"sub": "during"}))
        for answer in refused:
            self.assertEqual(answer.status, 503, answer)
            self.assertEqual(answer.json["error"], "unavailable", answer)
        prlimit_fsize(pid, "unlimited")
        try:
            wait_for(lambda: d.get("/healthz").json == {"status": "ok"}, "/healthz ok once writes work again",
                     timeout=15, every=0.2)
        except AssertionError as e:
            self.fail(f"{e}: {d.get('/healthz').body!r}; a revocation now: {d.post('/v1/revoke', {'jti': 'x', 'exp': int(time.time()) + 60})}")
        after = d.jwt(sub="after-the-outage")
        answer = wait_for(lambda: (lambda a: a if a.status == 200 else None)(d.post("/v1/revoke", {"jwt": after["jwt"]})),
                          "a revocation stored once writes work again", timeout=15, every=0.2)
        self.assertEqual(answer.json["revoked"], True, answer)
        self.assertRevoked([before, after])
        self.assertEqual(self.api.metrics()[("hsmsignd_revocation_store_up", "")], 1)
        d.kill()
        d.start()
        self.assertRevoked([before, after])

    def test_a_flood_of_revocations_is_acknowledged_and_kept_after_a_kill(self):
        d, n = self.daemon, 2000
        issued, took = pipelined(d.socket_path, [("POST", "/v1/jwt", {"sub": f"flood-{i}"}) for i in range(n)])
        self.assertEqual([a.status for a in issued], [200] * n, {a.status for a in issued})
        tokens = [a.json for a in issued]
        print(f"\n  {n} tokens issued in {took:.2f} s", flush=True)
        answers, took = pipelined(d.socket_path, [("POST", "/v1/revoke", {"jti": t["jti"], "exp": t["exp"]})
                                                  for t in tokens])
        print(f"  {n} revocations by jti on 8 connections, each acknowledged once durable: {took:.2f} s, "
              f"{n / took:.0f} revocations/s", flush=True)
        self.assertEqual([a.status for a in answers], [200] * n, {a.status for a in answers})
        for t, a in zip(tokens, answers):
            self.assertEqual(a.json, {"revoked": True, "kind": "jti", "iss": ISSUER, "jti": t["jti"], "exp": t["exp"]})
        d.kill()
        d.start()
        self.assertGreaterEqual(self.api.metrics()[("hsmsignd_revocation_entries", "")], n)
        verdicts, took = pipelined(d.socket_path, [("POST", "/v1/verify", {"jwt": t["jwt"]}) for t in tokens])
        print(f"  {n} verifications after kill -9 and restart: {took:.2f} s", flush=True)
        reasons = [v.json.get("reason") if v.status == 200 else v.status for v in verdicts]
        self.assertEqual(reasons, ["revoked"] * n, {r: reasons.count(r) for r in set(reasons)})
        jwks = d.jwks_json()
        for t in tokens[:: n // 20]:
            verify_jwt(t["jwt"], jwks, "ES256")
        lines = [json.loads(line) for line in (d.workdir / "log" / "audit.jsonl").read_text().splitlines()]
        revoked = {r["jti"] for r in lines if r["event"] == "revoke"}
        self.assertEqual(revoked, {t["jti"] for t in tokens}, "a revoke line for each acknowledged revocation")
        self.assertEqual(sum(1 for r in lines if r["event"] == "revoke"), n)


class NoClientTest(unittest.TestCase):
    def test_an_admin_revocation_that_names_nobody_is_refused_not_left_hanging(self):
        daemon = Daemon(clients=[])
        self.addCleanup(daemon.cleanup)
        # No client, so the issuer socket's /healthz is 403: wait on the public listener's.
        daemon.write_config()
        process, stderr = daemon.spawn()
        self.addCleanup(lambda: (process.terminate(), process.wait(timeout=10)))
        deadline = time.monotonic() + 30
        while True:
            try:
                if daemon.public("GET", "/healthz").status == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                self.fail(f"hsmsignd did not start: {stderr.read_text()}")
            time.sleep(0.05)
        conn = UnixHTTPConnection(daemon.workdir / "run" / "admin.sock", timeout=10)
        try:
            for body in ({"jti": "x"}, {"sub": "alice"}):
                answer = conn.call("POST", "/v1/admin/revoke", body)
                self.assertEqual(answer.status, 400, answer)
                self.assertIn("no client", answer.json["message"])
        finally:
            conn.close()


if __name__ == "__main__":
    unittest.main()
