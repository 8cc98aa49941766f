"""Tokens, JWS and raw signatures from every algorithm, checked by an independent verifier (jwcrypto)."""
import hashlib
import json
import re
import time
import unittest

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from jwcrypto import jwk, jws

from harness import (AUDIENCES, ISSUER, DaemonTestCase, b64url, b64url_decode, decode_segment, flip_char,
                     verify_jws, verify_jwt)

ALGORITHMS = {"es256": "ES256", "rs256": "RS256", "ps256": "PS256", "es384": "ES384", "eddsa": "EdDSA"}
HASH_OF = {"ES256": hashlib.sha256, "RS256": hashlib.sha256, "PS256": hashlib.sha256, "ES384": hashlib.sha384}
BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")


class IssuanceTest(DaemonTestCase):
    DAEMON = dict(keysets=list(ALGORITHMS.items()))

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.jwks = cls.daemon.jwks_json()

    def token(self, **request):
        answer = self.daemon.jwt(**request)
        header, claims = verify_jwt(answer["jwt"], self.jwks, answer["alg"])
        return answer, header, claims

    # --- every algorithm verifies -------------------------------------------------------------------

    def test_each_algorithm_verifies_against_the_listener_jwks(self):
        for keyset, alg in ALGORITHMS.items():
            with self.subTest(alg=alg):
                answer = self.daemon.jwt(keyset=keyset)
                self.assertEqual(answer["alg"], alg)
                header, claims = verify_jwt(answer["jwt"], self.daemon.jwks_json(), alg)
                self.assertEqual(header, {"alg": alg, "kid": answer["kid"], "typ": "JWT"})
                self.assertEqual(claims["sub"], "user-1")

    def test_each_algorithm_verifies_against_the_jwks_file(self):
        for keyset, alg in ALGORITHMS.items():
            with self.subTest(alg=alg):
                answer = self.daemon.jwt(keyset=keyset)
                header, _ = verify_jwt(answer["jwt"], self.daemon.jwks_file_json(), alg)
                self.assertEqual(header["kid"], answer["kid"])

    def test_a_tampered_signature_fails_verification(self):
        for keyset, alg in ALGORITHMS.items():
            with self.subTest(alg=alg):
                token = self.daemon.jwt(keyset=keyset)["jwt"]
                verify_jwt(token, self.jwks, alg)
                signature_start = token.rindex(".") + 1
                tampered = flip_char(token, signature_start + (len(token) - signature_start) // 2)
                # Fails because one character of the signature changed
                with self.assertRaises(jws.InvalidJWSSignature):
                    verify_jwt(tampered, self.jwks, alg)

    def test_a_tampered_payload_fails_verification(self):
        for keyset, alg in ALGORITHMS.items():
            with self.subTest(alg=alg):
                token = self.daemon.jwt(keyset=keyset, sub="alice")["jwt"]
                header, payload, signature = token.split(".")
                claims = decode_segment(payload)
                claims["sub"] = "mallory"
                forged = ".".join([header, b64url(json.dumps(claims).encode()), signature])
                # Fails because the payload is no longer what was signed
                with self.assertRaises(jws.InvalidJWSSignature):
                    verify_jwt(forged, self.jwks, alg)
                verify_jwt(token, self.jwks, alg)

    # --- header and claims -------------------------------------------------------------------------

    def test_the_daemon_writes_the_registered_claims(self):
        before = int(time.time())
        answer, header, claims = self.token(sub="user-42")
        after = int(time.time())
        self.assertEqual(claims["iss"], ISSUER)
        self.assertEqual(claims["sub"], "user-42")
        self.assertEqual(claims["aud"], AUDIENCES[0], "the client's first audience is the default")
        self.assertTrue(before - 1 <= claims["iat"] <= after + 1, (before, claims["iat"], after))
        self.assertEqual(claims["nbf"], claims["iat"])
        self.assertEqual(claims["exp"] - claims["iat"], 300, "default_ttl is 5m")
        self.assertEqual(set(claims), {"iss", "sub", "aud", "iat", "nbf", "exp", "jti"})
        self.assertEqual((answer["jti"], answer["iat"], answer["exp"]), (claims["jti"], claims["iat"], claims["exp"]))
        self.assertEqual(answer["kid"], header["kid"])

    def test_an_explicit_audience_is_used(self):
        _, _, claims = self.token(aud="billing")
        self.assertEqual(claims["aud"], "billing")

    def test_an_audience_array_is_kept_as_an_array(self):
        _, _, claims = self.token(aud=["api-gateway", "billing"])
        self.assertEqual(claims["aud"], ["api-gateway", "billing"])

    def test_a_requested_ttl_sets_exp(self):
        for ttl in (1, 120, 900):
            with self.subTest(ttl=ttl):
                answer, _, claims = self.token(ttl=ttl)
                self.assertEqual(claims["exp"] - claims["iat"], ttl)
                self.assertLessEqual(claims["exp"] - claims["iat"], 900, "max_ttl is 15m")
                self.assertEqual(answer["exp"] - answer["iat"], ttl)

    def test_a_requested_typ_goes_into_the_header(self):
        _, header, _ = self.token(typ="at+jwt")
        self.assertEqual(header["typ"], "at+jwt")
        _, header, _ = self.token()
        self.assertEqual(header["typ"], "JWT")

    def test_jti_is_unique_and_carries_at_least_128_bits(self):
        jtis = [self.daemon.jwt(sub=f"user-{i}")["jti"] for i in range(200)]
        self.assertEqual(len(set(jtis)), len(jtis), "a jti repeated")
        for jti in jtis:
            self.assertRegex(jti, BASE64URL)
            self.assertGreaterEqual(len(b64url_decode(jti)), 16, jti)

    def test_private_claims_are_added(self):
        private = {"role": "admin", "n": 5, "ok": True, "nested": {"list": [1, "two", None]}, "scope": "a b"}
        _, _, claims = self.token(claims=private)
        for name, value in private.items():
            self.assertEqual(claims[name], value, name)
        self.assertEqual(claims["iss"], ISSUER)

    def test_claims_may_not_override_a_registered_claim(self):
        self.token(claims={"role": "admin"})
        for name, value in {"iss": "https://evil.example", "sub": "root", "aud": "api-gateway", "exp": 4102444800,
                            "nbf": 0, "iat": 0, "jti": "fixed"}.items():
            with self.subTest(claim=name):
                answer = self.daemon.post("/v1/jwt", {"sub": "user-1", "claims": {name: value}})
                self.assertError(answer, 400, "bad_request")
                self.assertIn(name, answer.json["message"])

    # --- /v1/jws ---------------------------------------------------------------------------------

    def test_jws_signs_the_payload_bytes_with_typ_and_cty(self):
        payload = bytes(range(256)) + "é€".encode()
        for keyset, alg in ALGORITHMS.items():
            with self.subTest(alg=alg):
                answer = self.daemon.post("/v1/jws", {"payload": b64url(payload), "keyset": keyset,
                                                      "typ": "example+jws", "cty": "application/octet-stream"})
                self.assertEqual(answer.status, 200, answer)
                body = answer.json
                self.assertEqual(body["alg"], alg)
                header, signed = verify_jws(body["jws"], self.jwks, alg)
                self.assertEqual(signed, payload)
                self.assertEqual(header, {"alg": alg, "kid": body["kid"], "typ": "example+jws",
                                          "cty": "application/octet-stream"})

    def test_a_tampered_jws_fails_verification(self):
        for keyset, alg in ALGORITHMS.items():
            with self.subTest(alg=alg):
                compact = self.daemon.post("/v1/jws", {"payload": b64url(b"hello"), "keyset": keyset}).json["jws"]
                verify_jws(compact, self.jwks, alg)
                header, _, signature = compact.split(".")
                # Fails because the payload is not the one signed
                with self.assertRaises(jws.InvalidJWSSignature):
                    verify_jws(".".join([header, b64url(b"hellO"), signature]), self.jwks, alg)

    # --- /v1/sign ---------------------------------------------------------------------------------

    def public_key(self, kid):
        for entry in json.loads(self.jwks)["keys"]:
            if entry["kid"] == kid:
                return jwk.JWK(**entry).get_op_key("verify")
        self.fail(f"kid {kid} is not in the JWKS")

    def verify_digest_signature(self, alg, kid, signature, digest):
        """Raises InvalidSignature unless signature is alg's JWS-form signature over the given digest."""
        key = self.public_key(kid)
        hash_algorithm = {hashlib.sha256: hashes.SHA256(), hashlib.sha384: hashes.SHA384()}[HASH_OF[alg]]
        prehashed = utils.Prehashed(hash_algorithm)
        if alg.startswith("ES"):
            self.assertIsInstance(key, ec.EllipticCurvePublicKey)
            half = len(signature) // 2
            self.assertEqual(half, (key.curve.key_size + 7) // 8, "JWS form is r||s, each the curve's size")
            der = utils.encode_dss_signature(int.from_bytes(signature[:half], "big"),
                                             int.from_bytes(signature[half:], "big"))
            return key.verify(der, digest, ec.ECDSA(prehashed))
        self.assertIsInstance(key, rsa.RSAPublicKey)
        if alg == "RS256":
            return key.verify(signature, digest, padding.PKCS1v15(), prehashed)
        return key.verify(signature, digest, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                          prehashed)

    def test_sign_signs_the_given_digest(self):
        for keyset, alg in ALGORITHMS.items():
            if alg not in HASH_OF:
                continue  # EdDSA: see test_sign_refuses_eddsa_which_has_no_prehash_form
            with self.subTest(alg=alg):
                digest = HASH_OF[alg](b"document " + alg.encode()).digest()
                answer = self.daemon.post("/v1/sign", {"digest": b64url(digest), "keyset": keyset})
                self.assertEqual(answer.status, 200, answer)
                body = answer.json
                self.assertEqual(body["alg"], alg)
                self.assertRegex(body["signature"], BASE64URL)
                signature = b64url_decode(body["signature"])
                self.verify_digest_signature(alg, body["kid"], signature, digest)
                # Fails because the signature is over another digest
                other = HASH_OF[alg](b"another document").digest()
                with self.assertRaises(InvalidSignature):
                    self.verify_digest_signature(alg, body["kid"], signature, other)

    def test_sign_refuses_a_digest_of_the_wrong_length(self):
        good = self.daemon.post("/v1/sign", {"digest": b64url(hashlib.sha256(b"x").digest()), "keyset": "es256"})
        self.assertEqual(good.status, 200, good)
        for keyset, digest in [("es256", hashlib.sha1(b"x").digest()), ("es256", hashlib.sha384(b"x").digest()),
                               ("es384", hashlib.sha256(b"x").digest()), ("rs256", b""), ("ps256", b"\0" * 31)]:
            with self.subTest(keyset=keyset, length=len(digest)):
                self.assertError(self.daemon.post("/v1/sign", {"digest": b64url(digest), "keyset": keyset}),
                                 400, "bad_request")

    def test_sign_refuses_eddsa_which_has_no_prehash_form(self):
        # Ed25519 signs whole messages; a "digest" would be signed as if it were the message.
        answer = self.daemon.post("/v1/sign", {"digest": b64url(hashlib.sha256(b"x").digest()), "keyset": "eddsa"})
        self.assertError(answer, 400, "bad_request")
        self.assertIn("/v1/jws", answer.json["message"])


if __name__ == "__main__":
    unittest.main()
