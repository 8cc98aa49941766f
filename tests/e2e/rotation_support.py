"""Helpers for the rotation and crash tests: what is on the token (read with OpenSC's pkcs11-tool, not
through the daemon), a verifier's JWKS cache, and the daemon's /v1/keys in a handier shape.

Not a test module: test_rotation.py and test_crash.py import it."""
import http.client
import json
import shutil
import subprocess
import threading
import time

from jwcrypto import jwk, jwt

from harness import MODULE, PIN, TOKEN_LABEL, DaemonError, b64url, client

PKCS11_TOOL = shutil.which("pkcs11-tool") or "/usr/bin/pkcs11-tool"
LABEL_PREFIX = "hsmsignd/"
CURVES = {32: "P-256", 48: "P-384", 66: "P-521"}


def fast_schedule(rotation_period, prepublish, retire_after, max_age="1s", max_ttl="2s", default_ttl="2s",
                  keysets=("default",), destroy_retired=True):
    """Daemon(...) arguments for ES256 keysets rotating every few seconds, within the config's rules
    (prepublish ≥ jwks.max_age, retire_after ≥ max_ttl + jwks.max_age)."""
    return dict(
        keysets=[{"name": name, "algorithm": "ES256", "rotation_period": rotation_period, "prepublish": prepublish,
                  "retire_after": retire_after, "destroy_retired": destroy_retired} for name in keysets],
        clients=[client(keysets=list(keysets), max_ttl=max_ttl, default_ttl=default_ttl)],
        jwks={"max_age": max_age},
    )


def prepare(daemon):
    """Folders the configuration names that a daemon may expect to exist (the audit log's)."""
    (daemon.workdir / "log").mkdir(mode=0o750, exist_ok=True)
    return daemon


# --- the token, read directly ----------------------------------------------------------------------

def _ec_thumbprint(ec_point_hex):
    """RFC 7638 thumbprint of an EC public key from its CKA_EC_POINT (a DER OCTET STRING of 04||x||y)."""
    der = bytes.fromhex(ec_point_hex)
    if der[0] != 0x04:
        raise DaemonError(f"CKA_EC_POINT is not an OCTET STRING: {ec_point_hex}")
    length, offset = der[1], 2
    if length & 0x80:
        n = length & 0x7F
        length, offset = int.from_bytes(der[2:2 + n], "big"), 2 + n
    point = der[offset:offset + length]
    if point[0] != 0x04 or (len(point) - 1) % 2:
        raise DaemonError(f"not an uncompressed EC point: {ec_point_hex}")
    size = (len(point) - 1) // 2
    key = jwk.JWK(kty="EC", crv=CURVES[size], x=b64url(point[1:1 + size]), y=b64url(point[1 + size:]))
    return key.thumbprint()


def token_objects(env):
    """Every key object on the token: [{"class": "private"|"public", "label", "id", "ec_point"}]."""
    out = subprocess.run([PKCS11_TOOL, "--module", MODULE, "--token-label", TOKEN_LABEL, "--login", "--pin", PIN,
                          "--list-objects"], env=env, capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise DaemonError(f"pkcs11-tool --list-objects failed ({out.returncode}): {out.stderr}")
    objects, current = [], None
    for line in out.stdout.splitlines():
        if line and not line[0].isspace():
            kind = line.split(";")[0].strip()
            current = {"class": {"Private Key Object": "private", "Public Key Object": "public"}.get(kind, kind),
                       "label": "", "id": "", "ec_point": None}
            objects.append(current)
        elif current is not None and ":" in line:
            name, _, value = line.strip().partition(":")
            value = value.strip()
            if name == "label":
                current["label"] = value
            elif name == "ID":
                current["id"] = value.lower()
            elif name == "EC_POINT":
                current["ec_point"] = value
    return objects


def parse_label(label):
    """hsmsignd/<keyset>/<activates>/<created>[/retired] -> dict, or None for other labels."""
    if not label.startswith(LABEL_PREFIX):
        return None
    parts = label[len(LABEL_PREFIX):].split("/")
    if len(parts) not in (3, 4) or (len(parts) == 4 and parts[3] != "retired"):
        return None
    try:
        return {"keyset": parts[0], "activates": int(parts[1]), "created": int(parts[2]), "retired": len(parts) == 4}
    except ValueError:
        return None


class TokenKey:
    def __init__(self, key_id):
        self.id = key_id
        self.private_label = None
        self.public_label = None
        self.kid = None

    @property
    def label(self):
        return self.private_label or self.public_label

    @property
    def schedule(self):
        return parse_label(self.label or "")

    @property
    def keyset(self):
        s = self.schedule
        return s["keyset"] if s else None

    @property
    def complete(self):
        return self.private_label is not None and self.public_label is not None

    def __repr__(self):
        halves = "+".join(h for h, present in (("private", self.private_label is not None),
                                                ("public", self.public_label is not None)) if present)
        return f"<{self.label} id={self.id} kid={self.kid} {halves}>"


def token_keys(env):
    """hsmsignd's keys on the token by CKA_ID, each with its halves and (from its public half) its kid."""
    keys = {}
    for o in token_objects(env):
        if o["class"] not in ("private", "public") or not o["label"].startswith(LABEL_PREFIX):
            continue
        key = keys.setdefault(o["id"], TokenKey(o["id"]))
        if o["class"] == "private":
            key.private_label = o["label"]
        else:
            key.public_label = o["label"]
            if o["ec_point"]:
                key.kid = _ec_thumbprint(o["ec_point"])
    return keys


def read_public_key_thumbprint(env, key_id):
    """The kid of a public key object, read the long way: DER from the token, then cryptography/jwcrypto."""
    from cryptography.hazmat.primitives.serialization import load_der_public_key
    out = subprocess.run([PKCS11_TOOL, "--module", MODULE, "--token-label", TOKEN_LABEL, "--login", "--pin", PIN,
                          "--read-object", "--type", "pubkey", "--id", key_id], env=env, capture_output=True,
                         timeout=30)
    if out.returncode != 0:
        raise DaemonError(f"pkcs11-tool --read-object {key_id} failed: {out.stderr.decode(errors='replace')}")
    return jwk.JWK.from_pyca(load_der_public_key(out.stdout)).thumbprint()


def keyset_keys(keys, keyset="default"):
    return {i: k for i, k in keys.items() if k.keyset == keyset}


def pending_on_token(keys, keyset="default", now=None):
    """Keys of a keyset whose label says they activate later than now (operator-retired ones excluded)."""
    now = time.time() if now is None else now
    return sorted(k.kid or k.id for k in keyset_keys(keys, keyset).values()
                  if k.private_label and not k.schedule["retired"] and k.schedule["activates"] > now)


# --- the daemon's view -------------------------------------------------------------------------------

def keys_by_state(keys_answer):
    """/v1/keys -> {keyset: {state: [kid, ...]}}."""
    out = {}
    for k in keys_answer["keys"]:
        out.setdefault(k["keyset"], {}).setdefault(k["state"], []).append(k["kid"])
    return out


def jwks_kids(jwks_text):
    return sorted(k["kid"] for k in json.loads(jwks_text)["keys"])


def fetch_jwks(port, timeout=5.0):
    """GET the JWK Set from a daemon's loopback listener: (text, Cache-Control max-age in seconds)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/.well-known/jwks.json")
        answer = conn.getresponse()
        body = answer.read().decode()
        if answer.status != 200:
            raise DaemonError(f"GET /.well-known/jwks.json: {answer.status} {body[:200]}")
        max_age = None
        for part in (answer.getheader("Cache-Control") or "").split(","):
            name, _, value = part.strip().partition("=")
            if name == "max-age":
                max_age = int(value)
        return body, max_age
    finally:
        conn.close()


class CachedVerifier:
    """A verifier like a real one: a JWKS cache refreshed every max_age, never on an unknown kid."""

    def __init__(self, port, max_age):
        self.port = port
        self.max_age = max_age
        self.keyset = None
        self.kids = []
        self.fetched = None  # monotonic time of the last fetch
        self.fetches = 0
        self.largest = 0
        self.seen_kids = set()
        self.cache_controls = set()

    def refresh_if_stale(self):
        if self.fetched is not None and time.monotonic() - self.fetched < self.max_age:
            return
        started = time.monotonic()
        text, max_age = fetch_jwks(self.port)
        self.keyset = jwk.JWKSet.from_json(text)
        self.kids = jwks_kids(text)
        self.fetched = started
        self.fetches += 1
        self.largest = max(self.largest, len(self.kids))
        self.seen_kids.update(self.kids)
        self.cache_controls.add(max_age)

    def verify(self, token, alg="ES256"):
        """(header, claims); raises what jwcrypto raises when the token does not verify."""
        checked = jwt.JWT(jwt=token, key=self.keyset, algs=[alg])
        return json.loads(checked.header), json.loads(checked.claims)

    def cache_age(self):
        return time.monotonic() - self.fetched


class Sampler(threading.Thread):
    """Calls `sample()` every `interval` seconds until stopped, keeping the first exception."""

    def __init__(self, sample, interval):
        super().__init__(daemon=True)
        self.sample = sample
        self.interval = interval
        self.stopping = threading.Event()
        self.error = None
        self.count = 0

    def run(self):
        while not self.stopping.is_set():
            try:
                self.sample()
                self.count += 1
            except BaseException as e:  # reported by the test, not lost in a thread
                if self.error is None:
                    self.error = e
            self.stopping.wait(self.interval)

    def stop(self):
        self.stopping.set()
        self.join(timeout=30)
