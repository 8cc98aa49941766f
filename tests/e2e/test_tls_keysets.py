"""Keysets with usage = "tls": keys that sign any SHA-2 digest (X.509 certificates, CSRs, TLS handshakes)
through POST /v1/sign, are never in the JWKS and never verify a JWT, and, with rotation = "manual", change
only when an operator rotates or retires them. Every signature is checked with the `cryptography` package
against the DER SubjectPublicKeyInfo that GET /v1/keys gives: no code of the project's."""
import hashlib
import json
import unittest

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.serialization import load_der_public_key

from harness import AUDIENCES, ISSUER, Daemon, DaemonTestCase, as_uid, b64url, b64url_decode, client

HASHES = {"SHA-256": (hashlib.sha256, hashes.SHA256), "SHA-384": (hashlib.sha384, hashes.SHA384),
          "SHA-512": (hashlib.sha512, hashes.SHA512)}
KEYSETS = [
    ("default", "ES256"),  # a jwt keyset, beside them
    {"name": "tls-ec", "algorithm": "ES256", "usage": "tls"},  # scheduled: its timing is not checked against the JWKS
    {"name": "tls-p384", "algorithm": "ES384", "usage": "tls", "rotation": "manual"},
    {"name": "tls-rsa", "algorithm": "RS256", "usage": "tls", "rotation": "manual", "rsa_bits": 2048},
    {"name": "nginx-ec", "algorithm": "ES256", "usage": "tls", "rotation": "manual"},
]
TLS = {"tls-ec": "ES256", "tls-p384": "ES384", "tls-rsa": "RS256"}
# An nginx master (another uid than the tests') and its workers: two uids, one client, sign alone, no
# issuer or audiences (it gets no JWTs).
NGINX_UIDS = (4242, 4243)
NGINX = {"name": "nginx", "uids": list(NGINX_UIDS), "keysets": ["nginx-ec"], "operations": ["sign"]}


def verify(spki, alg, hash_name, pad, signature, digest):
    """Raises InvalidSignature unless `signature` (JWS form: ECDSA as r||s) is over `digest`."""
    key = load_der_public_key(b64url_decode(spki))
    prehashed = utils.Prehashed(HASHES[hash_name][1]())
    if alg.startswith("ES"):
        assert isinstance(key, ec.EllipticCurvePublicKey)
        half = (key.curve.key_size + 7) // 8
        assert len(signature) == 2 * half, f"r||s of a {key.curve.name} key is {2 * half} bytes, not {len(signature)}"
        der = utils.encode_dss_signature(int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big"))
        return key.verify(der, digest, ec.ECDSA(prehashed))
    assert isinstance(key, rsa.RSAPublicKey)
    assert len(signature) == key.key_size // 8
    if pad == "pkcs1":
        return key.verify(signature, digest, padding.PKCS1v15(), prehashed)
    mgf = padding.MGF1(HASHES[hash_name][1]())
    return key.verify(signature, digest, padding.PSS(mgf=mgf, salt_length=len(digest)), prehashed)


class TlsKeysets(DaemonTestCase):
    DAEMON = dict(keysets=KEYSETS, clients=[
        client(keysets=["default", *TLS]),
        NGINX,
    ])

    def setUp(self):
        self.keys = {k["keyset"]: k for k in self.daemon.get("/v1/keys").json["keys"] if k["state"] == "active"}

    def sign(self, **request):
        return self.daemon.post("/v1/sign", request)

    def test_keys_lists_tls_keys_with_their_spki(self):
        for keyset, alg in [("default", "ES256"), *TLS.items(), ("nginx-ec", "ES256")]:
            with self.subTest(keyset=keyset):
                key = self.keys[keyset]
                self.assertEqual(key["alg"], alg)
                self.assertEqual(key["usage"], "jwt" if keyset == "default" else "tls")
                manual = keyset in ("tls-p384", "tls-rsa", "nginx-ec")
                self.assertEqual(key["rotation"], "manual" if manual else "scheduled")
                public = load_der_public_key(b64url_decode(key["spki"]))
                self.assertIsInstance(public, rsa.RSAPublicKey if alg == "RS256" else ec.EllipticCurvePublicKey)
                # A manual keyset's active key has no scheduled end: the members are left out.
                self.assertEqual("deactivates" in key, not manual)
                self.assertEqual("retires" in key, not manual)

    def test_every_hash_and_padding_signs_and_verifies(self):
        for keyset, alg in TLS.items():
            paddings = ("pkcs1", "pss") if alg == "RS256" else (None,)
            for hash_name, (hash_fn, _) in HASHES.items():
                for pad in paddings:
                    with self.subTest(keyset=keyset, hash=hash_name, padding=pad):
                        digest = hash_fn(f"to be signed by {keyset}".encode()).digest()
                        request = {"digest": b64url(digest), "keyset": keyset, "hash": hash_name}
                        if pad:
                            request["padding"] = pad
                        answer = self.sign(**request)
                        self.assertEqual(answer.status, 200, answer)
                        body = answer.json
                        self.assertEqual((body["kid"], body["alg"], body["hash"]),
                                         (self.keys[keyset]["kid"], alg, hash_name))
                        self.assertEqual(body.get("padding"), pad)
                        signature = b64url_decode(body["signature"])
                        verify(self.keys[keyset]["spki"], alg, hash_name, pad, signature, digest)
                        # Fails because one byte of the signature changed
                        tampered = bytearray(signature)
                        tampered[len(tampered) // 3] ^= 0x01
                        with self.assertRaises(InvalidSignature):
                            verify(self.keys[keyset]["spki"], alg, hash_name, pad, bytes(tampered), digest)
                        # Fails because the signature is over another digest
                        with self.assertRaises(InvalidSignature):
                            verify(self.keys[keyset]["spki"], alg, hash_name, pad, signature,
                                   hash_fn(b"another document").digest())

    def test_defaults_are_the_algorithms_own_hash_and_padding(self):
        for keyset, alg, hash_name, pad in [("tls-ec", "ES256", "SHA-256", None), ("tls-p384", "ES384", "SHA-384", None),
                                            ("tls-rsa", "RS256", "SHA-256", "pkcs1")]:
            with self.subTest(keyset=keyset):
                digest = HASHES[hash_name][0](b"default").digest()
                answer = self.sign(digest=b64url(digest), keyset=keyset)
                self.assertEqual(answer.status, 200, answer)
                self.assertEqual((answer.json["hash"], answer.json.get("padding")), (hash_name, pad))
                verify(self.keys[keyset]["spki"], alg, hash_name, pad, b64url_decode(answer.json["signature"]), digest)

    def test_a_kid_picks_the_key(self):
        digest = hashlib.sha384(b"by kid").digest()
        answer = self.sign(digest=b64url(digest), kid=self.keys["tls-p384"]["kid"])
        self.assertEqual(answer.status, 200, answer)
        self.assertEqual(answer.json["kid"], self.keys["tls-p384"]["kid"])
        verify(self.keys["tls-p384"]["spki"], "ES384", "SHA-384", None, b64url_decode(answer.json["signature"]), digest)

    def test_tls_keys_are_never_in_the_jwks(self):
        tls_kids = {self.keys[k]["kid"] for k in [*TLS, "nginx-ec"]}
        for document in (self.daemon.jwks_json(), self.daemon.jwks_file_json(), self.daemon.get("/.well-known/jwks.json").body):
            kids = {k["kid"] for k in json.loads(document)["keys"]}
            self.assertIn(self.keys["default"]["kid"], kids)
            self.assertFalse(kids & tls_kids, "a tls key is in the JWKS")

    def test_a_jwt_signed_by_a_tls_key_never_verifies(self):
        # The attack a separate usage prevents: a sign client has the tls key sign a JWT's digest.
        key = self.keys["tls-ec"]
        header = b64url(json.dumps({"alg": "ES256", "kid": key["kid"], "typ": "JWT"}).encode())
        payload = b64url(json.dumps({"iss": ISSUER, "sub": "x", "aud": AUDIENCES[0], "jti": "j", "iat": 1,
                                     "nbf": 1, "exp": 4102444800}).encode())
        signed = self.sign(digest=b64url(hashlib.sha256(f"{header}.{payload}".encode()).digest()), keyset="tls-ec")
        self.assertEqual(signed.status, 200, signed)
        answer = self.daemon.post("/v1/verify", {"jwt": f"{header}.{payload}.{signed.json['signature']}"})
        self.assertEqual(answer.status, 200, answer)
        self.assertFalse(answer.json["valid"], answer)
        self.assertEqual(answer.json["reason"], "unknown_kid", answer)

    def test_jwt_and_jws_are_refused_on_a_tls_keyset(self):
        for path, body in (("/v1/jwt", {"sub": "u", "keyset": "tls-ec"}), ("/v1/jws", {"payload": "eA", "keyset": "tls-rsa"})):
            with self.subTest(path=path):
                answer = self.daemon.post(path, body)
                self.assertError(answer, 403, "forbidden")
                self.assertIn("tls keyset", answer.json["message"])

    def test_a_jwt_keyset_signs_its_own_hash_only(self):
        good = self.sign(digest=b64url(hashlib.sha256(b"x").digest()), keyset="default", hash="SHA-256")
        self.assertEqual(good.status, 200, good)
        answer = self.sign(digest=b64url(hashlib.sha384(b"x").digest()), keyset="default", hash="SHA-384")
        self.assertError(answer, 400, "bad_request")
        self.assertIn("tls keyset", answer.json["message"])

    def test_a_digest_of_the_wrong_length_is_refused(self):
        answer = self.sign(digest=b64url(hashlib.sha256(b"x").digest()), keyset="tls-rsa", hash="SHA-512")
        self.assertError(answer, 400, "bad_request")
        self.assertIn("64", answer.json["message"])
        self.assertIn("32", answer.json["message"])

    def test_padding_on_an_ec_key_is_refused(self):
        answer = self.sign(digest=b64url(hashlib.sha256(b"x").digest()), keyset="tls-ec", padding="pss")
        self.assertError(answer, 400, "bad_request")
        self.assertIn("RSA", answer.json["message"])

    def test_unknown_hash_and_padding_names_are_refused(self):
        for member, value in (("hash", "SHA-1"), ("hash", "sha256"), ("padding", "none"), ("padding", "oaep")):
            with self.subTest(member=member, value=value):
                self.assertError(self.sign(digest=b64url(b"\1" * 32), keyset="tls-rsa", **{member: value}),
                                 400, "bad_request")

    def test_an_unknown_kid_is_not_found(self):
        answer = self.sign(digest=b64url(b"\1" * 32), kid="no-such-kid")
        self.assertError(answer, 404, "not_found")
        self.assertIn("no-such-kid", answer.json["message"])

    def test_a_kid_of_a_keyset_the_client_cannot_use_is_forbidden(self):
        answer = self.sign(digest=b64url(b"\1" * 32), kid=self.keys["nginx-ec"]["kid"])
        self.assertError(answer, 403, "forbidden")

    def test_a_kid_and_another_keyset_disagree(self):
        answer = self.sign(digest=b64url(b"\1" * 32), kid=self.keys["tls-ec"]["kid"], keyset="tls-rsa")
        self.assertError(answer, 400, "bad_request")

    def test_a_sign_only_client_of_two_uids_signs_with_its_tls_keyset(self):
        key = self.keys["nginx-ec"]
        digest = hashlib.sha384(b"handshake").digest()
        for uid in NGINX_UIDS:
            with self.subTest(uid=uid):
                [answer] = as_uid(uid, self.daemon.socket_path,
                                  [["POST", "/v1/sign", {"digest": b64url(digest), "hash": "SHA-384"}]])
                self.assertEqual(answer["status"], 200, answer)
                body = json.loads(answer["body"])
                self.assertEqual(body["kid"], key["kid"])
                verify(key["spki"], "ES256", "SHA-384", None, b64url_decode(body["signature"]), digest)
                [jwt] = as_uid(uid, self.daemon.socket_path, [["POST", "/v1/jwt", {"sub": "x"}]])
                self.assertEqual(jwt["status"], 403, jwt)

    def test_the_audit_line_names_hash_padding_kid_and_peer(self):
        digest = hashlib.sha512(b"audited").digest()
        answer = self.sign(digest=b64url(digest), keyset="tls-rsa", hash="SHA-512", padding="pss")
        self.assertEqual(answer.status, 200, answer)
        lines = [json.loads(l) for l in (self.daemon.workdir / "log" / "audit.jsonl").read_text().splitlines()]
        line = [l for l in lines if l.get("event") == "sign" and l.get("digest") == b64url(digest)][-1]
        self.assertEqual((line["operation"], line["kid"], line["keyset"], line["hash"], line["padding"], line["uid"]),
                         ("sign", answer.json["kid"], "tls-rsa", "SHA-512", "pss", 0))
        self.assertEqual(line["client"], "e2e")
        ec_line = self.sign(digest=b64url(hashlib.sha256(b"ec audited").digest()), keyset="tls-ec")
        self.assertEqual(ec_line.status, 200, ec_line)
        lines = [json.loads(l) for l in (self.daemon.workdir / "log" / "audit.jsonl").read_text().splitlines()]
        line = [l for l in lines if l.get("event") == "sign" and l.get("kid") == ec_line.json["kid"]][-1]
        self.assertEqual(line["hash"], "SHA-256")
        self.assertNotIn("padding", line, "an EC signature has no padding")


class ManualRotation(unittest.TestCase):
    """rotate makes a new key that signs at once; the old one signs by kid until it is retired; nothing
    happens by the clock, and a restart finds the same states on the token."""

    def setUp(self):
        self.daemon = Daemon(keysets=[("default", "ES256"),
                                      {"name": "tls", "algorithm": "ES256", "usage": "tls", "rotation": "manual"}],
                             clients=[client(keysets=["default", "tls"])])
        self.addCleanup(self.daemon.cleanup)
        self.daemon.start()

    def tls_keys(self):
        return {k["kid"]: k for k in self.daemon.get("/v1/keys").json["keys"] if k["keyset"] == "tls"}

    def signs(self, kid, spki):
        digest = hashlib.sha256(b"manual " + kid.encode()).digest()
        answer = self.daemon.post("/v1/sign", {"digest": b64url(digest), "kid": kid})
        if answer.status == 200:
            self.assertEqual(answer.json["kid"], kid)
            verify(spki, "ES256", "SHA-256", None, b64url_decode(answer.json["signature"]), digest)
        return answer

    def test_rotate_then_retire(self):
        [(old, old_key)] = self.tls_keys().items()
        self.assertEqual(old_key["state"], "active")

        out = self.daemon.ctl("rotate", "tls")
        self.assertEqual(out.returncode, 0, out.stderr)
        keys = self.tls_keys()
        self.assertEqual(len(keys), 2, keys)
        [new] = [kid for kid in keys if kid != old]
        self.assertEqual((keys[new]["state"], keys[old]["state"]), ("active", "retiring"))
        self.assertEqual(keys[old]["deactivates"], keys[new]["activates"])
        self.assertNotIn("retires", keys[old], "a manual keyset's key retires when an operator says so")
        self.assertNotIn("deactivates", keys[new])

        # Without a kid, the new key signs; with the old kid, the old key still does.
        answer = self.daemon.post("/v1/sign", {"digest": b64url(b"\2" * 32), "keyset": "tls"})
        self.assertEqual(answer.json["kid"], new, answer)
        self.assertEqual(self.signs(old, keys[old]["spki"]).status, 200)

        # The states come from the token: a restart finds them again.
        self.daemon.restart()
        again = self.tls_keys()
        self.assertEqual({kid: k["state"] for kid, k in again.items()}, {old: "retiring", new: "active"})
        self.assertEqual(self.signs(old, keys[old]["spki"]).status, 200)

        out = self.daemon.ctl("retire", old)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(set(self.tls_keys()), {new})
        answer = self.signs(old, keys[old]["spki"])
        self.assertEqual(answer.status, 404, answer)
        self.assertIn(old, answer.json["message"])
        self.assertEqual(self.signs(new, keys[new]["spki"]).status, 200)


if __name__ == "__main__":
    unittest.main()
