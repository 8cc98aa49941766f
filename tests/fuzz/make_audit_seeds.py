#!/usr/bin/env python3
"""Writes the seed audit logs of fuzz_audit_verify (tests/fuzz/corpus/fuzz_audit_verify/).

The lines follow the daemon's format (daemon/audit/audit_log.cpp: seq, time, event, fields, prev;
checkpoints with kid, alg, head, signature) and are chained and signed as the daemon would, with the
fuzz target's test audit key: private scalar = SHA-256("hsmsignd fuzz audit key"). The key is made
from a public constant and protects nothing. Rerun after changing the format:

    python3 tests/fuzz/make_audit_seeds.py
"""
import base64
import hashlib
import json
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

OUT = Path(__file__).resolve().parent / "corpus" / "fuzz_audit_verify"
GENESIS = "0" * 64


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


KEY = ec.derive_private_key(int.from_bytes(hashlib.sha256(b"hsmsignd fuzz audit key").digest(), "big"), ec.SECP256R1())
NUMBERS = KEY.public_key().public_numbers()
JWK = {"crv": "P-256", "kty": "EC", "x": b64url(NUMBERS.x.to_bytes(32, "big")), "y": b64url(NUMBERS.y.to_bytes(32, "big"))}
KID = b64url(hashlib.sha256(json.dumps(JWK, separators=(",", ":"), sort_keys=True).encode()).digest())


def sign(message: str) -> str:
    r, s = decode_dss_signature(KEY.sign(message.encode(), ec.ECDSA(hashes.SHA256())))
    return b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def chain(records, first_seq=1, prev=GENESIS):
    lines = []
    for i, (event, fields) in enumerate(records):
        seq = first_seq + i
        time = f"2024-05-01T12:00:{i:02d}.{i * 1111:06d}Z"
        line = {"seq": seq, "time": time, "event": event}
        if event == "checkpoint":
            line.update(kid=KID, alg="ES256", head=prev,
                        signature=sign(f"hsmsignd audit checkpoint\n{seq}\n{time}\n{prev}"))
        else:
            line.update(fields)
        line["prev"] = prev
        text = json.dumps(line, separators=(",", ":"), ensure_ascii=False)
        lines.append(text)
        prev = hashlib.sha256(text.encode()).hexdigest()
    return lines


PEER = {"uid": 1000, "gid": 1000, "pid": 4242, "client": "auth-service"}
DAY = [
    ("start", {"version": "0.1.0", "config": "Zm9v"}),
    ("keygen", {"keyset": "default", "kid": "k1", "label": "hsmsignd/default/2024-05-01T12:00:00Z/2024-05-01T12:00:00Z"}),
    ("activate", {"keyset": "default", "kid": "k1"}),
    ("issue", {**PEER, "jti": "AAAAAAAAAAAAAAAAAAAAAA", "sub": "alice", "aud": "api-gateway", "exp": 1714565100,
               "keyset": "default", "kid": "k1"}),
    ("sign", {**PEER, "operation": "jws", "digest": "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU", "keyset": "default",
              "kid": "k1"}),
    ("checkpoint", {}),
    ("deny", {"uid": 65534, "gid": 65534, "pid": 7, "reason": "no [[client]] matches the peer", "target": "/v1/jwt"}),
    ("config", {"uid": 0, "gid": 0, "pid": 1, "operation": "rotate", "keyset": "default", "immediate": True}),
    ("issue", {**PEER, "jti": "BBBBBBBBBBBBBBBBBBBBBB", "sub": "bob", "aud": ["a", "b"], "exp": 1714565200,
               "keyset": "default", "kid": "k2"}),
    ("checkpoint", {}),
    ("error", {"reason": "C_GenerateKeyPair CKR_DEVICE_ERROR"}),
]


def write(name, lines, key_line=None):
    text = "".join(line + "\n" for line in lines)
    if key_line is not None:
        text = key_line + "\n" + text
    (OUT / name).write_text(text)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    day = chain(DAY)
    write("day", day)
    write("one_line", chain(DAY[:1]))
    write("checkpoint_first", chain([("checkpoint", {})] + DAY[:3]))
    write("rotated_continuation", chain(DAY[3:], first_seq=1001, prev=hashlib.sha256(b"earlier").hexdigest()))
    write("with_key_file", day, key_line=json.dumps({**JWK, "kid": KID, "alg": "ES256", "use": "sig"}))
    tampered = list(day)
    tampered[3] = tampered[3].replace("alice", "mallory")
    write("tampered_line", tampered)
    write("missing_line", day[:4] + day[5:])
    write("no_trailing_newline", day[:3])
    (OUT / "no_trailing_newline").write_text("\n".join(day[:3]))
    bad_sig = list(day)
    bad_sig[5] = bad_sig[5].replace('"signature":"', '"signature":"A')
    write("bad_signature", bad_sig)
    write("garbage", ["not json", "{}", '{"seq":1}'])


if __name__ == "__main__":
    main()
