"""docs/openapi.yaml is the daemon's contract, checked both ways against the real daemon.

The document is linted by @redocly/cli (package.json pins it; scripts/install-deps.sh runs `npm ci`). Then
one daemon (on the fault shim, so that the token can be made to fail) is asked, on its three listeners,
for every route's success and every error the document lists for it; each answer's status, headers and
body are validated against the schema the document gives for that path, method and status (Debian's
python3-jsonschema, Draft 2020-12, $refs resolved within the whole document). Both ways: an answer the
document does not describe fails (an undocumented status, header value or member; the schemas are
strict), and so does a documented (path, method, status) that no request produced. The routes the
source code serves must all be in the document. A last test shows the validation can fail.
"""
import copy
import hashlib
import io
import json
import os
import re
import resource
import socket
import subprocess
import time
import traceback
import unittest
import zlib

import jsonschema
import yaml

from harness import (ISSUER, SOURCE_ROOT, Daemon, RawClient, UnixHTTPConnection, b64url, b64url_decode, client,
                     fault_shim, flip_char, http_request, raw_as_uid, read_response, verify_jws, verify_jwt)

SPEC_PATH = SOURCE_ROOT / "docs" / "openapi.yaml"
REDOCLY = SOURCE_ROOT / "node_modules" / ".bin" / "redocly"
API_SOURCES = SOURCE_ROOT / "daemon" / "api"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
BASE_URI = "https://hsmsignd.invalid/docs/openapi.yaml"  # never fetched: the document is its own store
NOBODY = 65534   # no [[client]]
LIMITED = 65533  # the client with subjects and max_rate
MAX_BODY = 4096
REQUEST_TIMEOUT = 3  # seconds: the 408s wait this long, all at once; the connection caps fill within it
CONNECTION_CAPS = {"issuer": 4096, "admin": 64, "public": 1024}  # fixed in daemon.cpp
STATUS_LIST_TTL = 60      # [revocation] status_list_ttl's default, in seconds
STATUS_LIST_WINDOW = 3600  # [revocation] status_list_window's default
# HTTP's own headers, which OpenAPI does not list (Content-Type is the media type): any other header an
# answer carries must be among its documented ones.
FRAMING_HEADERS = {"content-type", "content-length", "connection"}


def pointer(*parts):
    return "#/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def strict_json(data):
    """JSON as the daemon must write it: UTF-8, no duplicate member names."""
    def no_duplicates(pairs):
        names = [k for k, _ in pairs]
        if len(names) != len(set(names)):
            raise ValueError(f"duplicate member names in {names}")
        return dict(pairs)
    return json.loads(data.decode("utf-8"), object_pairs_hook=no_duplicates)


PROMETHEUS_SAMPLE = re.compile(
    r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)'
    r'(?:\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*\})?'
    r' (?:[-+]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+)|NaN|[-+]Inf)$')
PROMETHEUS_COMMENT = re.compile(r'^# (?:HELP (?P<help>[a-zA-Z_:][a-zA-Z0-9_:]*) .*|TYPE (?P<type>[a-zA-Z_:][a-zA-Z0-9_:]*) '
                                r'(?:counter|gauge|histogram|summary|untyped))$')


def prometheus_families(text):
    """The families a Prometheus text exposition declares; raises on a line that is not the format."""
    families, declared = set(), set()
    for number, line in enumerate(text.split("\n"), 1):
        if line == "" and number == text.count("\n") + 1:
            continue  # after the final newline
        comment, sample = PROMETHEUS_COMMENT.match(line), PROMETHEUS_SAMPLE.match(line)
        if comment:
            if comment.group("type"):
                declared.add(comment.group("type"))
        elif sample:
            name = sample.group("name")
            base = re.sub(r"_(bucket|sum|count)$", "", name)  # a histogram's samples
            family = base if base in declared else name
            if family not in declared:
                raise ValueError(f"line {number}: sample of {name} before its # TYPE")
            families.add(family)
        else:
            raise ValueError(f"line {number} is not Prometheus text: {line!r}")
    if not text.endswith("\n"):
        raise ValueError("the exposition does not end with a newline")
    return declared | families


class Document:
    """docs/openapi.yaml, with validators for any schema in it (by JSON pointer)."""

    def __init__(self, path):
        self.doc = yaml.safe_load(path.read_text())
        self._check_json_compatible(self.doc, "#")
        self.format_checker = jsonschema.FormatChecker()
        try:  # python3-jsonschema >= 4.18 resolves with `referencing`
            from referencing import Registry, Resource
            from referencing.jsonschema import DRAFT202012
            registry = Registry().with_resource(BASE_URI, Resource(contents=self.doc, specification=DRAFT202012))
            self._make = lambda schema: jsonschema.Draft202012Validator(schema, registry=registry,
                                                                        format_checker=self.format_checker)
        except ImportError:  # Debian 12's 4.10
            resolver = jsonschema.RefResolver(base_uri=BASE_URI, referrer=self.doc)
            self._make = lambda schema: jsonschema.Draft202012Validator(schema, resolver=resolver,
                                                                        format_checker=self.format_checker)
        self._validators = {}

    def _check_json_compatible(self, value, where):
        # YAML 1.1 would read an unquoted 2026-01-01T00:00:00Z as a datetime: the document must be JSON data.
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, str):
                    raise AssertionError(f"{where}: key {k!r} is not a string")
                self._check_json_compatible(v, f"{where}/{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self._check_json_compatible(v, f"{where}/{i}")
        elif not (value is None or isinstance(value, (str, int, float, bool))):
            raise AssertionError(f"{where}: {value!r} is a {type(value).__name__}, not JSON")

    def at(self, ptr):
        node = self.doc
        for part in ptr.lstrip("#/").split("/") if ptr != "#" else []:
            part = part.replace("~1", "/").replace("~0", "~")
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node

    def resolve(self, obj, ptr):
        """A Response, Header or Parameter object and its pointer, following $refs."""
        while "$ref" in obj:
            ptr = obj["$ref"]
            obj = self.at(ptr)
        return obj, ptr

    def errors(self, ptr, instance):
        if ptr not in self._validators:
            self._validators[ptr] = self._make({"$ref": BASE_URI + ptr})
        return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                for e in self._validators[ptr].iter_errors(instance)]

    @property
    def paths(self):
        return self.doc["paths"]

    def template_of(self, path):
        """The documented path `path` is an instance of: itself when listed, else the templated path whose
        parameters (one segment each) it fills (/statuslists/default/1-abc is /statuslists/{keyset}/{window});
        `path` unchanged when none matches."""
        if path in self.paths:
            return path
        for documented in self.paths:
            pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(documented))
            if "{" in documented and re.fullmatch(pattern, path):
                return documented
        return path

    def operations(self):
        for path, item in self.paths.items():
            for method in METHODS:
                if method in item:
                    yield path, method, item[method]

    def listeners(self, path, method):
        item = self.paths[path]
        servers = item[method].get("servers") or item.get("servers") or self.doc["servers"]
        return {s["x-listener"] for s in servers}


class OpenApiTest(unittest.TestCase):
    """setUpClass makes every request (the daemon starts once); the tests judge what came back."""

    @classmethod
    def setUpClass(cls):
        cls.lint = None
        if REDOCLY.exists():
            env = dict(os.environ, REDOCLY_TELEMETRY="off", REDOCLY_SUPPRESS_UPDATE_NOTICE="true", NO_COLOR="1")
            cls.lint = subprocess.Popen([str(REDOCLY), "lint", "--format=json", "--config",
                                         str(SOURCE_ROOT / "redocly.yaml"), str(SPEC_PATH)],
                                        cwd=SOURCE_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        cls.spec = Document(SPEC_PATH)
        cls.seen = {}        # (path, method, status) -> answers checked against it
        cls.served = set()   # (listener, path, method) answered 2xx or 304
        cls.samples = {}     # (path, method, status) -> (answer, response pointer)
        cls.problems = []    # what the document and the daemon disagree on
        cls.families = set()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = CONNECTION_CAPS["issuer"] + 512
        if soft < wanted:
            if hard < wanted:
                raise AssertionError(f"RLIMIT_NOFILE hard limit {hard} < {wanted}: the connection caps need the descriptors")
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        started = time.monotonic()
        cls.start_daemon()
        try:
            for step in (cls.exercise_successes, cls.exercise_status_lists, cls.exercise_bad_bodies, cls.exercise_forbidden,
                         cls.exercise_other_methods, cls.exercise_admin, cls.exercise_revocation,
                         cls.exercise_token_failures,
                         cls.exercise_http_errors, cls.exercise_timeouts, cls.exercise_connection_caps,
                         cls.exercise_metrics):
                try:
                    step()
                except Exception:
                    cls.problems.append(f"{step.__name__} stopped: {traceback.format_exc()}")
            cls.stopped = cls.daemon.stop()
        finally:
            cls.daemon.cleanup()
        cls.took = time.monotonic() - started

    @classmethod
    def tearDownClass(cls):
        if cls.lint and cls.lint.poll() is None:
            cls.lint.kill()
            cls.lint.wait()

    # --- the daemon -------------------------------------------------------------------------------

    @classmethod
    def start_daemon(cls):
        # FaultyToken (test_faults) wants the shim in the environment, as CTest gives it to test_faults.
        os.environ.setdefault("HSMSIGND_FAULT_SHIM", fault_shim())
        from test_faults import FaultyToken
        keysets = [{"name": "default", "algorithm": "ES256"}, {"name": "rsa", "algorithm": "RS256"},
                   {"name": "ed", "algorithm": "EdDSA"},
                   {"name": "kept", "algorithm": "ES384", "destroy_retired": False}]
        clients = [client(keysets=[k["name"] for k in keysets]),
                   client(name="limited", uids=(LIMITED,), keysets=("default",), operations=("jwt",),
                          subjects=["user:*", "svc:billing"], max_rate="1/m")]
        # The Token Status List is on, with its defaults: every JWT names its entry, the JWKS listener serves the lists.
        # One signer process: the fault shim counts each directive's COUNT per process.
        cls.daemon = Daemon(keysets=keysets, clients=clients, token={"signers": 1},
                            server={"max_body": MAX_BODY, "request_timeout": f"{REQUEST_TIMEOUT}s"},
                            revocation={"status_list": True})
        try:
            cls.faults = FaultyToken(cls.daemon)
            cls.faults.clear()
            cls.daemon.start()
        except BaseException:
            cls.daemon.cleanup()
            raise
        cls.address = {"issuer": str(cls.daemon.socket_path),
                       "admin": str(cls.daemon.workdir / cls.daemon.config["server"]["admin_socket"]),
                       "public": ("127.0.0.1", cls.daemon.port)}

    @classmethod
    def call(cls, listener, method, target, body=None, headers=None):
        """One request on a connection of its own; a dict or list body is sent as JSON."""
        if listener == "public":
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
            return cls.daemon.public(method, target, headers=headers, body=body)
        conn = UnixHTTPConnection(cls.address[listener], timeout=30)
        try:
            return conn.call(method, target, body, headers)
        finally:
            conn.close()

    @classmethod
    def raw(cls, listener, data):
        with RawClient(cls.address[listener], timeout=30) as conn:
            return conn.send(data).response()

    # --- judging one answer -----------------------------------------------------------------------

    @classmethod
    def check(cls, listener, method, target, answer, expect, body=None, schema_rejects=False, what=""):
        """Validates `answer` to `method target` on `listener` against the document, and records it.

        expect: the status this request is meant to produce. body: the JSON request body (checked against
        the request schema: accepted when answered 200, refused when schema_rejects)."""
        label = f"{listener} {method} {target} -> {answer.status if answer else 'no answer'}" + (f" [{what}]" if what else "")
        problems = []
        if answer is None:
            cls.problems.append(f"{label}: the connection closed without an answer")
            return None
        if answer.status != expect:
            problems.append(f"expected {expect}, body {answer.body[:200]!r}")
        path = cls.spec.template_of(target.split("?")[0])
        item = cls.spec.paths.get(path, {})
        served_here = [m for m in METHODS if m in item and listener in cls.spec.listeners(path, m)]
        if not served_here:
            # A path the document does not list for this listener: 404, the NotFound response.
            if answer.status != 404:
                problems.append(f"{path} is not documented on {listener}: only a 404 would be")
            else:
                problems += cls.check_response(cls.spec.doc["components"]["responses"]["NotFound"],
                                               pointer("components", "responses", "NotFound"), answer)
        else:
            m = method.lower()
            if m in served_here:
                operations = [m]
            else:
                # A method the path does not list (on this listener): 405, as every operation of it says.
                operations = served_here
                if answer.status != 405:
                    problems.append(f"{method} is not documented for {path} on {listener}; only a 405 would be")
            for op in operations:
                responses = item[op]["responses"]
                status = str(answer.status)
                if status not in responses:
                    problems.append(f"status {status} is not documented for {op.upper()} {path}")
                    continue
                ptr = pointer("paths", path, op, "responses", status)
                found = cls.check_response(responses[status], ptr, answer)
                problems += found
                key = (path, op, answer.status)
                cls.seen.setdefault(key, 0)
                cls.seen[key] += 1
                cls.samples.setdefault(key, (answer, ptr))
                if not found and (200 <= answer.status < 300 or answer.status == 304) and m == op:
                    cls.served.add((listener, path, op))
                request = item[op].get("requestBody")
                if isinstance(body, (dict, list)) and m == op and request:
                    errors = cls.spec.errors(pointer("paths", path, op, "requestBody", "content", "application/json",
                                                     "schema"), body)
                    if answer.status == 200 and errors:
                        problems.append(f"the request was served but its schema refuses it: {errors}")
                    if schema_rejects and not errors:
                        problems.append("the request was refused but its schema accepts it")
        cls.problems += [f"{label}: {p}" for p in problems]
        return answer

    @classmethod
    def check_response(cls, response, ptr, answer):
        """Problems of `answer` against one Response object: its headers, media type and body."""
        problems = []
        response, ptr = cls.spec.resolve(response, ptr)
        documented = {name.lower() for name in response.get("headers", {})} | FRAMING_HEADERS
        problems += [f"header {name} is not documented" for name in answer.headers if name not in documented]
        for name, header in response.get("headers", {}).items():
            header, header_ptr = cls.spec.resolve(header, f"{ptr}/headers/{name}")
            value = answer.headers.get(name.lower())
            if value is None:
                if header.get("required"):
                    problems.append(f"header {name} is missing")
                continue
            schema = header["schema"]
            while "$ref" in schema:
                schema = cls.spec.at(schema["$ref"])
            instance = int(value) if schema.get("type") == "integer" and re.fullmatch(r"-?[0-9]+", value) else value
            problems += [f"header {name}: {e}" for e in cls.spec.errors(f"{header_ptr}/schema", instance)]
        content = response.get("content")
        if content is None:
            if answer.body:
                problems.append(f"the document gives no body, the daemon sent {answer.body[:100]!r}")
            return problems
        media_type = answer.headers.get("content-type", "").split(";")[0].strip()
        if media_type not in content:
            return problems + [f"Content-Type {media_type!r} is not among {sorted(content)}"]
        schema_ptr = f"{ptr}/content/{media_type.replace('/', '~1')}/schema"
        if media_type == "application/json":
            try:
                instance = strict_json(answer.body)
            except ValueError as e:
                return problems + [f"the body is not strict JSON: {e}"]
        else:
            instance = answer.body.decode("utf-8")
        problems += [f"body {e}" for e in cls.spec.errors(schema_ptr, instance)]
        return problems

    @classmethod
    def pipelined_as(cls, uid, listener, requests):
        """[(method, target, body)] sent on one connection by a process of `uid`; the answers in order."""
        data = b"".join(http_request(m, t, b"" if b is None else json.dumps(b).encode(),
                                     ["Content-Type: application/json"] if b is not None else [])
                        for m, t, b in requests)
        stream = io.BytesIO(raw_as_uid(uid, cls.address[listener], data))
        answers = []
        while (answer := read_response(stream)) is not None:
            answers.append(answer)
        if len(answers) != len(requests):
            cls.problems.append(f"uid {uid} on {listener}: {len(requests)} requests, {len(answers)} answers")
        return answers + [None] * (len(requests) - len(answers))

    # --- the requests -----------------------------------------------------------------------------

    @classmethod
    def exercise_successes(cls):
        c = cls.check
        jwks = c("public", "GET", "/.well-known/jwks.json", cls.call("public", "GET", "/.well-known/jwks.json"), 200)
        cls.jwks = jwks.body.decode()
        for keyset, alg in (("default", "ES256"), ("rsa", "RS256"), ("ed", "EdDSA"), ("kept", "ES384")):
            request = {"sub": "user:42", "keyset": keyset}
            answer = c("issuer", "POST", "/v1/jwt", cls.call("issuer", "POST", "/v1/jwt", request), 200, request)
            if answer.status == 200:
                cls.check_jwt(answer.json, alg, ttl=300, aud="api-gateway", keyset=keyset)
        request = {"sub": "svc:billing", "aud": ["api-gateway", "billing"], "ttl": 60, "typ": "at+jwt",
                   "claims": {"tenant": {"id": 7, "at": "x"}, "role": "admin"}}
        answer = c("issuer", "POST", "/v1/jwt", cls.call("issuer", "POST", "/v1/jwt", request), 200, request)
        if answer.status == 200:
            claims = cls.check_jwt(answer.json, "ES256", ttl=60, aud=["api-gateway", "billing"], typ="at+jwt")
            private = list(claims.items())[8:]  # after the registered claims and status
            if private != [("role", "admin"), ("tenant", {"id": 7, "at": "x"})] or list(claims["tenant"]) != ["at", "id"]:
                cls.problems.append(f"private claims not in the token, sorted by name as documented: {claims}")
        for request in ({"payload": b64url(b'{"hello":"world"}'), "typ": "JOSE", "cty": "json"},
                        {"payload": b64url(b"\0\1\2"), "keyset": "ed"}, {"payload": ""}):
            answer = c("issuer", "POST", "/v1/jws", cls.call("issuer", "POST", "/v1/jws", request), 200, request)
            if answer.status == 200:
                header, payload = verify_jws(answer.json["jws"], cls.jwks, answer.json["alg"])
                cls.problems += [f"JWS header {e}" for e in cls.spec.errors(
                    pointer("components", "schemas", "JwsAnswer", "properties", "jws", "x-protected-header"), header)]
                if payload != b64url_decode(request["payload"]):
                    cls.problems.append(f"the JWS does not carry the payload asked for: {payload!r}")
        for request in ({"digest": b64url(hashlib.sha256(b"x").digest())},
                        {"digest": b64url(hashlib.sha384(b"x").digest()), "keyset": "kept"}):
            c("issuer", "POST", "/v1/sign", cls.call("issuer", "POST", "/v1/sign", request), 200, request)
        c("issuer", "GET", "/v1/keys", cls.call("issuer", "GET", "/v1/keys"), 200)
        c("issuer", "GET", "/v1/keys?state=all", cls.call("issuer", "GET", "/v1/keys?state=all"), 200,
          what="a query string is ignored")
        issuer_jwks = c("issuer", "GET", "/.well-known/jwks.json", cls.call("issuer", "GET", "/.well-known/jwks.json"), 200)
        if issuer_jwks.body != jwks.body:
            cls.problems.append("the issuer socket and the JWKS listener serve different JWK Sets")
        etag = {"If-None-Match": jwks.headers.get("etag", "")}
        c("issuer", "GET", "/.well-known/jwks.json", cls.call("issuer", "GET", "/.well-known/jwks.json", headers=etag), 304)
        c("public", "GET", "/.well-known/jwks.json", cls.call("public", "GET", "/.well-known/jwks.json", headers=etag), 304)
        c("public", "HEAD", "/.well-known/jwks.json", cls.call("public", "HEAD", "/.well-known/jwks.json", headers=etag), 304)
        c("public", "GET", "/.well-known/jwks.json", cls.call("public", "GET", "/.well-known/jwks.json",
                                                              headers={"If-None-Match": '"AAAAAAAAAAAAAAAAAAAAAA"'}), 200)
        head = c("public", "HEAD", "/.well-known/jwks.json", cls.call("public", "HEAD", "/.well-known/jwks.json"), 200)
        if head.headers.get("content-length") != str(len(jwks.body)) or head.headers.get("etag") != jwks.headers.get("etag"):
            cls.problems.append(f"HEAD of the JWK Set does not give GET's length and ETag: {head.headers}")
        for listener in ("issuer", "public"):
            answer = c(listener, "GET", "/healthz", cls.call(listener, "GET", "/healthz"), 200)
            if answer.status == 200 and answer.json != {"status": "ok"}:
                cls.problems.append(f"{listener} /healthz is not ok at start: {answer.body!r}")
        c("public", "HEAD", "/healthz", cls.call("public", "HEAD", "/healthz"), 200)
        # Paths the document does not list: 404 on every listener.
        for listener, target in (("issuer", "/v1/nope"), ("issuer", "/v1/jwt/"), ("admin", "/v1/admin/nope"),
                                 ("admin", "/v1/jwt"), ("public", "/v1/keys"), ("public", "/metrics")):
            c(listener, "GET", target, cls.call(listener, "GET", target), 404)

    @classmethod
    def check_jwt(cls, answer, alg, ttl, aud, typ="JWT", keyset="default"):
        header, claims = verify_jwt(answer["jwt"], cls.jwks, alg)
        ptr = pointer("components", "schemas", "JwtAnswer", "properties", "jwt")
        cls.problems += [f"JWT header {e}" for e in cls.spec.errors(f"{ptr}/x-protected-header", header)]
        cls.problems += [f"JWT claims {e}" for e in cls.spec.errors(f"{ptr}/x-claims", claims)]
        expected = {"alg": alg, "kid": answer["kid"], "typ": typ}
        if header != expected or list(header) != ["alg", "kid", "typ"]:
            cls.problems.append(f"JWT header {header}, expected {expected} in that order")
        registered = ["iss", "sub", "aud", "iat", "nbf", "exp", "jti", "status"]
        if list(claims)[:8] != registered:
            cls.problems.append(f"JWT claims {list(claims)}: the registered ones first, then status, in the documented order")
        entry = claims.get("status", {}).get("status_list", {})
        # The default status_list_uri: the JWKS listener's /statuslists, one list per keyset and window.
        if not re.fullmatch(rf"http://127\.0\.0\.1:{cls.daemon.port}/statuslists/{keyset}/[0-9]+-[0-9a-f]{{8}}", str(entry.get("uri"))):
            cls.problems.append(f"JWT status {claims.get('status')}: not an entry of a list of keyset {keyset} on the JWKS listener")
        elif int(entry["uri"].rsplit("/", 1)[1].split("-")[0]) != claims["iat"] - claims["iat"] % STATUS_LIST_WINDOW:
            cls.problems.append(f"JWT status {claims['status']}: not the list of the window of iat {claims['iat']}")
        if (claims["iss"], claims["aud"], claims["nbf"], claims["exp"] - claims["iat"]) != (ISSUER, aud, claims["iat"], ttl):
            cls.problems.append(f"JWT claims {claims}: iss, aud, nbf = iat, exp = iat + {ttl}")
        if (claims["iat"], claims["exp"], claims["jti"]) != (answer["iat"], answer["exp"], answer["jti"]):
            cls.problems.append(f"the answer's iat, exp, jti differ from the token's: {answer} {claims}")
        return claims

    @classmethod
    def list_of(cls, jwt):
        """(path on the JWKS listener, idx, uri) of the Status List entry a JWT names."""
        entry = json.loads(b64url_decode(jwt.split(".")[1]))["status"]["status_list"]
        origin = f"http://127.0.0.1:{cls.daemon.port}"
        if not entry["uri"].startswith(origin + "/statuslists/"):
            cls.problems.append(f"status_list uri {entry['uri']} is not the JWKS listener's /statuslists")
        return entry["uri"][len(origin):], entry["idx"], entry["uri"]

    @classmethod
    def status_list_bits(cls, answer, uri, jwks):
        """The bytes of a Status List Token answered 200, once it is checked against the document: signed by
        a key of the JWK Set, its header and claims as the schemas and their order say, `sub` its URI, `ttl`
        and Cache-Control the configured ttl, `exp` = `iat` + 2 ttl, the ETag its SHA-256."""
        token = answer.body.decode()
        header, claims = verify_jwt(token, jwks, "ES256")
        ptr = pointer("components", "schemas", "StatusListToken")
        cls.problems += [f"Status List Token header {e}" for e in cls.spec.errors(f"{ptr}/x-protected-header", header)]
        cls.problems += [f"Status List Token claims {e}" for e in cls.spec.errors(f"{ptr}/x-claims", claims)]
        if list(header) != ["alg", "kid", "typ"] or list(claims) != ["sub", "iat", "exp", "ttl", "status_list"]:
            cls.problems.append(f"Status List Token {header} {list(claims)}: not in the documented order")
        if (claims.get("sub"), claims.get("ttl")) != (uri, STATUS_LIST_TTL) or \
                claims.get("exp") != claims.get("iat", 0) + 2 * STATUS_LIST_TTL:
            cls.problems.append(f"Status List Token claims {claims}: sub {uri}, ttl {STATUS_LIST_TTL}, exp = iat + 2 ttl")
        if answer.headers.get("cache-control") != f"public, max-age={STATUS_LIST_TTL}":
            cls.problems.append(f"Status List Cache-Control {answer.headers.get('cache-control')!r}")
        if answer.headers.get("etag") != '"' + b64url(hashlib.sha256(answer.body).digest()) + '"':
            cls.problems.append(f"Status List ETag {answer.headers.get('etag')!r} is not the token's SHA-256")
        return zlib.decompress(b64url_decode(claims["status_list"]["lst"]))

    @classmethod
    def bit(cls, bits, idx):
        if idx // 8 >= len(bits):
            cls.problems.append(f"index {idx} is beyond the list ({len(bits) * 8} entries)")
            return None
        return bits[idx // 8] >> (idx % 8) & 1

    @classmethod
    def exercise_status_lists(cls):
        """GET and HEAD of a Status List on the JWKS listener: 200 with its token, the same token again while
        nothing changed, 304 for its ETag, 404 for a list that does not exist, 405 for other methods, and
        nothing of it on the issuer socket. (503: exercise_token_failures; what a revocation sets:
        exercise_revocation.)"""
        c = cls.check
        issued = cls.call("issuer", "POST", "/v1/jwt", {"sub": "svc:listed"}).json
        path, idx, uri = cls.list_of(issued["jwt"])
        jwks = cls.call("public", "GET", "/.well-known/jwks.json").body.decode()
        got = c("public", "GET", path, cls.call("public", "GET", path), 200)
        if got.status != 200:
            return
        if cls.bit(cls.status_list_bits(got, uri, jwks), idx) != 0:
            cls.problems.append(f"{uri}: the bit of {issued['jti']}, never revoked, is set")
        again = c("public", "GET", path, cls.call("public", "GET", path), 200, what="nothing changed")
        if again.body != got.body:
            cls.problems.append(f"{uri} was signed again though nothing changed")
        etag = {"If-None-Match": got.headers.get("etag", "")}
        c("public", "GET", path, cls.call("public", "GET", path, headers=etag), 304)
        c("public", "HEAD", path, cls.call("public", "HEAD", path, headers=etag), 304)
        c("public", "GET", path, cls.call("public", "GET", path, headers={"If-None-Match": '"' + "A" * 43 + '"'}), 200,
          what="another ETag")
        head = c("public", "HEAD", path, cls.call("public", "HEAD", path), 200)
        if head.headers.get("content-length") != str(len(got.body)) or head.headers.get("etag") != got.headers.get("etag"):
            cls.problems.append(f"HEAD of a Status List does not give GET's length and ETag: {head.headers}")
        window, host = path.rsplit("/", 1)[1].split("-")
        window = int(window)
        for target in ("/statuslists/default/1", f"/statuslists/nokeyset/{window}-{host}",
                       f"/statuslists/default/{window + 1}-{host}", f"/statuslists/default/{window}",
                       f"/statuslists/default/{window}-{'0' if host[0] != '0' else '1'}{host[1:]}"):
            c("public", "GET", target, cls.call("public", "GET", target), 404, what="no such list")
            c("public", "HEAD", target, cls.call("public", "HEAD", target), 404, what="no such list")
        for target in ("/statuslists/", f"{path}/x", "/statuslists/default/../../etc/passwd"):
            c("public", "GET", target, cls.call("public", "GET", target), 404, what="not a list's path")
        for method in ("POST", "DELETE", "PUT"):
            c("public", method, path, cls.call("public", method, path), 405)
        # Any target under /statuslists/ is the route (documented): another method is 405 there too.
        other = cls.call("public", "POST", "/statuslists/a/b/c")
        if (other.status, other.headers.get("allow")) != (405, "GET, HEAD"):
            cls.problems.append(f"POST /statuslists/a/b/c: {other}, expected 405 with Allow: GET, HEAD")
        c("issuer", "GET", path, cls.call("issuer", "GET", path), 404, what="the JWKS listener's only")

    @classmethod
    def exercise_bad_bodies(cls):
        c = cls.check
        sha256 = b64url(hashlib.sha256(b"x").digest())
        for target, body, rejects in (
                ("/v1/jwt", {}, True),
                ("/v1/jwt", {"sub": "u", "subject": "x"}, True),
                ("/v1/jwt", {"sub": 5}, True),
                ("/v1/jwt", {"sub": "u", "ttl": "300"}, True),
                ("/v1/jwt", {"sub": "u", "ttl": 0}, True),
                ("/v1/jwt", {"sub": "u", "aud": []}, True),
                ("/v1/jwt", {"sub": "u", "typ": "a b"}, True),
                ("/v1/jwt", {"sub": "u", "claims": {"iss": "x"}}, True),
                ("/v1/jwt", {"sub": "u", "claims": {"status": {"status_list": {"idx": 0, "uri": "x"}}}}, False),
                ("/v1/jwt", {"sub": "u", "ttl": 3600}, False),  # over this client's max_ttl
                ("/v1/jwt", {"sub": "u", "claims": {"deep": json.loads("[" * 20 + "]" * 20)}}, False),
                ("/v1/jws", {"payload": "not base64!"}, True),
                ("/v1/jws", {"payload": "eA", "alg": "none"}, True),
                ("/v1/sign", {"digest": b64url(b"\1" * 20)}, True),
                ("/v1/sign", {"digest": sha256, "keyset": "ed"}, False),  # EdDSA signs messages
                ("/v1/sign", {"digest": b64url(hashlib.sha384(b"x").digest())}, False),  # ES256 wants 32 bytes
                ("/v1/revoke", {}, True),
                ("/v1/revoke", {"jti": "x", "exp": 1, "jwt": "a.b.c"}, True),
                ("/v1/revoke", {"jti": "x"}, True),
                ("/v1/revoke", {"jti": "x", "exp": "1"}, True),
                ("/v1/revoke", {"jti": "x" * 257, "exp": 1}, True),
                ("/v1/revoke", {"jti": "x", "exp": 1, "iss": "x"}, True),
                ("/v1/revoke", {"jwt": 5}, True),
                ("/v1/revoke", {"jwt": "a.b.c"}, False),  # a string, but not a token
                ("/v1/verify", {}, True),
                ("/v1/verify", {"jwt": "a.b.c", "extra": 1}, True),
                ("/v1/verify", {"jwt": 5}, True),
                ("/v1/verify", {"jwt": "a.b.c", "aud": ["x"]}, True),
        ):
            c("issuer", "POST", target, cls.call("issuer", "POST", target, body), 400, body, schema_rejects=rejects)
        for data in (b"{", b'{"sub": "a", "sub": "b"}', b'{"sub": "\xff"}', b"[]", b'{"sub": "a\x00"}'):
            c("issuer", "POST", "/v1/jwt", cls.call("issuer", "POST", "/v1/jwt", data), 400, what=repr(data))

    @classmethod
    def exercise_forbidden(cls):
        c = cls.check
        sha256 = b64url(hashlib.sha256(b"x").digest())
        requests = [("POST", "/v1/jwt", {"sub": "user:1"}), ("POST", "/v1/jws", {"payload": "eA"}),
                    ("POST", "/v1/sign", {"digest": sha256}), ("GET", "/v1/keys", None),
                    ("GET", "/.well-known/jwks.json", None), ("GET", "/healthz", None), ("GET", "/metrics", None),
                    ("POST", "/v1/revoke", {"jti": "x", "exp": 1}), ("POST", "/v1/verify", {"jwt": "a.b.c"})]
        for (method, target, body), answer in zip(requests, cls.pipelined_as(NOBODY, "issuer", requests)):
            c("issuer", method, target, answer, 403, what="not a client")
        for target, body in (("/v1/jwt", {"sub": "u", "aud": "evil"}), ("/v1/jwt", {"sub": "u", "keyset": "nope"}),
                             ("/v1/jws", {"payload": "eA", "keyset": "nope"}),
                             ("/v1/sign", {"digest": sha256, "keyset": "nope"})):
            c("issuer", "POST", target, cls.call("issuer", "POST", target, body), 403, body, what="policy")
        unknown_kid = {"digest": sha256, "kid": "A" * 43}
        c("issuer", "POST", "/v1/sign", cls.call("issuer", "POST", "/v1/sign", unknown_kid), 404, unknown_kid,
          what="no key has this kid")
        # The limited client: a sub outside its subjects, then over its max_rate of 1/m on each signing route.
        requests = [("POST", "/v1/jwt", {"sub": "admin"}), ("POST", "/v1/jwt", {"sub": "user:1"}),
                    ("POST", "/v1/jws", {"payload": "eA"}), ("POST", "/v1/sign", {"digest": sha256}),
                    ("POST", "/v1/revoke", {"jti": "x", "exp": int(time.time()) + 60})]  # revocations count too
        answers = cls.pipelined_as(LIMITED, "issuer", requests)
        c("issuer", "POST", "/v1/jwt", answers[0], 403, requests[0][2], what="subjects")
        for (method, target, body), answer in zip(requests[1:], answers[1:]):
            if c("issuer", method, target, answer, 429, body, what="max_rate"):
                retry = answer.headers.get("retry-after", "")
                if not (retry.isdigit() and 1 <= int(retry) <= 60):
                    cls.problems.append(f"{target} over max_rate 1/m: Retry-After {retry!r}, expected 1 to 60")
        # The admin socket, opened up on this throw-away daemon: the daemon itself refuses other uids.
        admin = cls.address["admin"]
        requests = [("POST", "/v1/admin/rotate", {"keyset": "default"}), ("POST", "/v1/admin/retire", {"kid": "x"}),
                    ("POST", "/v1/admin/destroy", {"kid": "x"}), ("POST", "/v1/admin/checkpoint", None),
                    ("GET", "/v1/admin/custody", None), ("POST", "/v1/admin/revoke", {"jti": "x"}),
                    ("POST", "/v1/admin/verify", {"jwt": "a.b.c"})]
        os.chmod(admin, 0o666)
        try:
            answers = cls.pipelined_as(NOBODY, "admin", requests)
        finally:
            os.chmod(admin, 0o600)
        for (method, target, body), answer in zip(requests, answers):
            c("admin", method, target, answer, 403, what="not root")

    @classmethod
    def exercise_other_methods(cls):
        """A method each path does not list, on each listener that serves it: 405."""
        for listener in ("issuer", "admin", "public"):
            for path, item in cls.spec.paths.items():
                listed = [m for m in METHODS if m in item and listener in cls.spec.listeners(path, m)]
                if listed:
                    method = "POST" if "post" not in item else "DELETE"
                    cls.check(listener, method, path, cls.call(listener, method, path), 405)
        cls.check("issuer", "PUT", "/v1/jwt", cls.call("issuer", "PUT", "/v1/jwt", {"sub": "u"}), 405)
        cls.check("issuer", "GET", "/v1/jwt", cls.call("issuer", "GET", "/v1/jwt"), 405)
        cls.check("admin", "GET", "/v1/admin/rotate", cls.call("admin", "GET", "/v1/admin/rotate"), 405)

    @classmethod
    def admin(cls, method, target, body, expect, schema_rejects=False, what=""):
        answer = cls.check("admin", method, target, cls.call("admin", method, target, body), expect, body,
                           schema_rejects, what)
        return answer.json if answer is not None and answer.status == 200 else {}

    @classmethod
    def exercise_admin(cls):
        a = cls.admin
        pending = a("POST", "/v1/admin/rotate", {"keyset": "default"}, 200).get("kid")
        again = a("POST", "/v1/admin/rotate", {"keyset": "default", "immediate": False}, 200).get("kid")
        if pending != again:
            cls.problems.append(f"a second rotate gave {again}, not the pending {pending}")
        a("POST", "/v1/admin/rotate", {"keyset": "nope"}, 404)
        a("POST", "/v1/admin/rotate", {"keyset": "default", "bogus": 1}, 400, schema_rejects=True)
        a("POST", "/v1/admin/rotate", {"keyset": "default", "immediate": "yes"}, 400, schema_rejects=True)
        a("POST", "/v1/admin/rotate", {}, 400, schema_rejects=True)
        a("POST", "/v1/admin/rotate", b"{", 400)
        cls.faults.set("fail C_GenerateKeyPair CKR_HOST_MEMORY 1")
        a("POST", "/v1/admin/rotate", {"keyset": "kept"}, 503, what="C_GenerateKeyPair fails")
        # The token fails when the keyring reads it again after the retirement: 503, and /healthz degraded.
        cls.faults.set("fail C_GetAttributeValue CKR_HOST_MEMORY 1")
        a("POST", "/v1/admin/retire", {"kid": pending}, 503, what="the read after it fails")
        cls.faults.clear()
        for listener in ("issuer", "public"):
            answer = cls.check(listener, "GET", "/healthz", cls.call(listener, "GET", "/healthz"), 200, what="degraded")
            if answer.status == 200 and answer.json.get("status") != "degraded":
                cls.problems.append(f"{listener} /healthz after a failed token read: {answer.body!r}, expected degraded")
        cls.check("public", "HEAD", "/healthz", cls.call("public", "HEAD", "/healthz"), 200, what="degraded")
        # A rotation that generates a key reads the token again (a pending key would only be answered).
        retired, pending = pending, a("POST", "/v1/admin/rotate", {"keyset": "ed"}, 200).get("kid")
        answer = cls.check("issuer", "GET", "/healthz", cls.call("issuer", "GET", "/healthz"), 200)
        if answer.status == 200 and answer.json != {"status": "ok"}:
            cls.problems.append(f"/healthz after a good token read: {answer.body!r}")
        keys = cls.check("issuer", "GET", "/v1/keys", cls.call("issuer", "GET", "/v1/keys"), 200)
        if retired in keys.body.decode():
            cls.problems.append(f"{retired}, retired (answered 503), is still published once the token was read again")
        a("POST", "/v1/admin/retire", {"kid": "A" * 43}, 404)
        a("POST", "/v1/admin/retire", {}, 400, schema_rejects=True)
        a("POST", "/v1/admin/retire", {"kid": pending, "now": True}, 400, schema_rejects=True)
        a("POST", "/v1/admin/retire", {"kid": pending}, 200)
        # destroy_retired = false keeps a retired key on the token, for destroy.
        kept = a("POST", "/v1/admin/rotate", {"keyset": "kept"}, 200).get("kid")
        a("POST", "/v1/admin/retire", {"kid": kept}, 200)
        custody = a("GET", "/v1/admin/custody", None, 200)
        states = {k["kid"]: k["state"] for k in custody.get("keys", [])}
        if states.get(kept) != "retired" or "audit" not in {k["keyset"] for k in custody.get("keys", [])}:
            cls.problems.append(f"the custody report should list the kept key retired and the audit key: {states}")
        active = next((k["kid"] for k in custody.get("keys", []) if k["keyset"] == "kept" and k["state"] == "active"), "x")
        a("POST", "/v1/admin/destroy", {"kid": active}, 400, what="not retired")
        a("POST", "/v1/admin/destroy", {"kid": "B" * 43}, 404)
        a("POST", "/v1/admin/destroy", {"kid": 5}, 400, schema_rejects=True)
        cls.faults.set("fail C_FindObjectsInit CKR_HOST_MEMORY 1")
        a("POST", "/v1/admin/destroy", {"kid": kept}, 503)
        cls.faults.clear()
        a("POST", "/v1/admin/destroy", {"kid": kept}, 200)
        cls.faults.set("fail C_FindObjectsInit CKR_HOST_MEMORY 1")
        a("GET", "/v1/admin/custody", None, 503)
        cls.faults.clear()
        a("POST", "/v1/admin/checkpoint", None, 200)
        cls.faults.set("fail C_Sign CKR_HOST_MEMORY 1")
        a("POST", "/v1/admin/checkpoint", None, 503)
        cls.faults.clear()

    @classmethod
    def exercise_revocation(cls):
        """/v1/revoke and /v1/verify, and their admin twins: both bodies, both verdicts, the refusals, and
        503 while the audit log cannot be written (the embedded store cannot be made unreachable: the 503
        of an unreachable Redis is for the Redis tests)."""
        c, a = cls.check, cls.admin
        jwks = cls.call("public", "GET", "/.well-known/jwks.json").body.decode()
        token = lambda sub: cls.call("issuer", "POST", "/v1/jwt", {"sub": sub}).json
        t, t2, t3, t4 = token("svc:revoke-1"), token("svc:revoke-2"), token("svc:revoke-3"), token("svc:revoke-4")
        verify_jwt(t["jwt"], jwks, "ES256")

        def verdict(listener, body, valid, reason=None, what=""):
            target = "/v1/verify" if listener == "issuer" else "/v1/admin/verify"
            answer = c(listener, "POST", target, cls.call(listener, "POST", target, body), 200, body, what=what)
            if answer.status == 200 and (answer.json.get("valid"), answer.json.get("reason")) != (valid, reason):
                cls.problems.append(f"{target} {what}: {answer.body[:200]!r}, expected valid {valid} reason {reason}")

        def revoke(body, expect, answer_expected=None, what=""):
            answer = c("issuer", "POST", "/v1/revoke", cls.call("issuer", "POST", "/v1/revoke", body), expect, body,
                       what=what)
            if answer_expected is not None and answer.status == 200 and answer.json != answer_expected:
                cls.problems.append(f"/v1/revoke {what}: {answer.body!r}, expected {answer_expected}")

        for listener in ("issuer", "admin"):
            verdict(listener, {"jwt": t["jwt"]}, True, what="valid")
            verdict(listener, {"jwt": t["jwt"], "aud": "api-gateway"}, True, what="valid for its aud")
            verdict(listener, {"jwt": t["jwt"], "aud": "payments"}, False, "wrong_audience")
            verdict(listener, {"jwt": "not a token"}, False, "malformed")
        head, payload, signature = t["jwt"].split(".")
        forged = head + "." + payload + "." + flip_char(signature, 8)
        verdict("issuer", {"jwt": forged}, False, "bad_signature")
        revoke({"jwt": t["jwt"]}, 200, {"revoked": True, "kind": "jti", "iss": ISSUER, "jti": t["jti"], "exp": t["exp"]},
               what="the token")
        verdict("issuer", {"jwt": t["jwt"]}, False, "revoked")
        verdict("admin", {"jwt": t["jwt"]}, False, "revoked")
        revoke({"jti": t2["jti"], "exp": t2["exp"]}, 200,
               {"revoked": True, "kind": "jti", "iss": ISSUER, "jti": t2["jti"], "exp": t2["exp"]}, what="its jti")
        # The Status List: the token form set t's bit; the jti form did not reach the list (documented).
        path, idx, uri = cls.list_of(t["jwt"])
        deadline = time.monotonic() + 5  # a changed list is signed again at most once a second
        while True:
            listed = cls.call("public", "GET", path)
            if listed.status != 200 or time.monotonic() > deadline:
                break
            list_claims = json.loads(b64url_decode(listed.body.decode().split(".")[1]))
            if cls.bit(zlib.decompress(b64url_decode(list_claims["status_list"]["lst"])), idx) == 1:
                break
            time.sleep(0.2)
        if c("public", "GET", path, listed, 200, what="after revocations").status == 200:
            bits = cls.status_list_bits(listed, uri, jwks)
            if cls.bit(bits, idx) != 1:
                cls.problems.append(f"{uri}: the bit of {t['jti']}, revoked with the token, is not set")
            for other, how in ((t2, "by its jti alone"), (t3, "not revoked")):
                other_path, other_idx, other_uri = cls.list_of(other["jwt"])
                if other_uri == uri and cls.bit(bits, other_idx) != 0:
                    cls.problems.append(f"{uri}: the bit of {other['jti']} ({how}) is set")
        revoke({"jwt": forged}, 200, {"revoked": False, "reason": "bad_signature"}, what="forged")
        revoke({"jti": "gone", "exp": 1}, 200, {"revoked": False, "reason": "expired"}, what="expired")
        # The daemon's signature (POST /v1/jws signs any payload) over another issuer's claims: 403.
        claims = json.loads(b64url_decode(payload))
        claims["iss"] = "https://someone-else.example"
        foreign = cls.call("issuer", "POST", "/v1/jws", {"payload": b64url(json.dumps(claims).encode())}).json["jws"]
        revoke({"jwt": foreign}, 403, what="another issuer's")

        a("POST", "/v1/admin/revoke", {"jwt": t3["jwt"]}, 200)
        a("POST", "/v1/admin/revoke", {"jti": "q67yXCLpxacFyq54Uc_D3g"}, 200)
        a("POST", "/v1/admin/revoke", {"jti": t4["jti"], "iss": ISSUER, "exp": t4["exp"]}, 200)
        a("POST", "/v1/admin/revoke", {"sub": "svc:revoke-9", "iss": ISSUER}, 200)
        a("POST", "/v1/admin/revoke", {"sub": "svc:revoke-9", "before": int(time.time()) - 60}, 200)
        a("POST", "/v1/admin/revoke", {"keyset": "kept"}, 200)
        a("POST", "/v1/admin/revoke", {"keyset": "nope"}, 404)
        a("POST", "/v1/admin/revoke", {"sub": "x", "before": int(time.time()) + 3600}, 400, what="before in the future")
        a("POST", "/v1/admin/revoke", {"sub": "x", "iss": "https://nobody.example"}, 400, what="an iss no client has")
        a("POST", "/v1/admin/revoke", {"jti": "x", "iss": "https://nobody.example"}, 400, what="an iss no client has")
        a("POST", "/v1/admin/revoke", {"sub": "s" * 1024, "iss": ISSUER}, 200, what="a sub of 1024 bytes")
        a("POST", "/v1/admin/revoke", {"sub": "s" * 1025}, 400, schema_rejects=True)
        a("POST", "/v1/admin/revoke", {"sub": "x", "iss": "i" * 1025}, 400, schema_rejects=True)
        a("POST", "/v1/admin/revoke", {"jwt": "a.b.c"}, 400, what="not a token")
        a("POST", "/v1/admin/revoke", {}, 400, schema_rejects=True)
        a("POST", "/v1/admin/revoke", {"sub": "x", "keyset": "kept"}, 400, schema_rejects=True)
        a("POST", "/v1/admin/revoke", {"sub": 5}, 400, schema_rejects=True)
        a("POST", "/v1/admin/revoke", {"keyset": "kept", "iss": ISSUER}, 400, schema_rejects=True)
        a("POST", "/v1/admin/revoke", b"{", 400)
        a("POST", "/v1/admin/verify", {"jwt": 5}, 400, schema_rejects=True)
        a("POST", "/v1/admin/verify", {}, 400, schema_rejects=True)
        a("POST", "/v1/admin/verify", b"[]", 400)

        # The audit log cannot be written: nothing is acknowledged.
        from test_audit import prlimit_fsize
        log = cls.daemon.workdir / cls.daemon.config["audit"]["file"]
        pid = cls.daemon.process.pid
        prlimit_fsize(pid, log.stat().st_size + 64)
        try:
            revoke({"jti": "during-outage", "exp": int(time.time()) + 60}, 503, what="audit log unwritable")
            a("POST", "/v1/admin/revoke", {"jti": "during-outage"}, 503, what="audit log unwritable")
        finally:
            prlimit_fsize(pid, "unlimited")
        deadline = time.monotonic() + 10
        while cls.call("issuer", "GET", "/healthz").json != {"status": "ok"} and time.monotonic() < deadline:
            time.sleep(0.1)
        revoke({"jti": "after-outage", "exp": int(time.time()) + 60}, 200, what="the log is writable again")

    @classmethod
    def exercise_token_failures(cls):
        # A Status List that must be signed (these two never were) while the token fails: 503, GET and HEAD.
        lists = [(method, cls.list_of(cls.call("issuer", "POST", "/v1/jwt", {"sub": "u", "keyset": keyset}).json["jwt"])[0])
                 for method, keyset in (("GET", "rsa"), ("HEAD", "ed"))]
        for method, path in lists:
            cls.faults.set("fail C_Sign CKR_HOST_MEMORY 1")
            cls.check("public", method, path, cls.call("public", method, path), 503, what="the list cannot be signed")
        sha256 = b64url(hashlib.sha256(b"x").digest())
        for target, body in (("/v1/jwt", {"sub": "u"}), ("/v1/jws", {"payload": "eA"}), ("/v1/sign", {"digest": sha256})):
            cls.faults.set("fail C_Sign CKR_HOST_MEMORY 1")  # a new file: the count starts again
            cls.check("issuer", "POST", target, cls.call("issuer", "POST", target, body), 503, body)
        cls.faults.clear()
        for listener in ("issuer", "public"):
            cls.check(listener, "GET", "/healthz", cls.call(listener, "GET", "/healthz"), 503)
        cls.check("public", "HEAD", "/healthz", cls.call("public", "HEAD", "/healthz"), 503)
        cls.check("issuer", "POST", "/v1/jwt", cls.call("issuer", "POST", "/v1/jwt", {"sub": "u"}), 200, {"sub": "u"})
        cls.check("issuer", "GET", "/healthz", cls.call("issuer", "GET", "/healthz"), 200, what="signs again")

    @classmethod
    def documented_operations(cls):
        """(listener, method, path) of every operation, each on every listener that serves it."""
        return [(listener, method.upper(), path) for path, method, _ in cls.spec.operations()
                for listener in sorted(cls.spec.listeners(path, method))]

    @classmethod
    def exercise_http_errors(cls):
        for listener, method, path in cls.documented_operations():
            head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n".encode()
            cls.check(listener, method, path,
                      cls.raw(listener, head + b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
                      400, what="Content-Length and Transfer-Encoding")
            cls.check(listener, method, path, cls.raw(listener, head + b"Content-Length: 100000\r\n\r\n"), 413,
                      what="Content-Length over max_body")
        cls.check("issuer", "POST", "/v1/jwt",
                  cls.raw("issuer", http_request("POST", "/v1/jwt", json.dumps({"sub": "u", "claims": {"pad": "x" * MAX_BODY}}).encode())),
                  413, what="a body over max_body")
        cls.check("issuer", "GET", "/v1/keys", cls.raw("issuer", http_request("GET", "/v1/keys", headers=["X-Pad: " + "a" * 9000])),
                  413, what="a header over 8 KiB")
        cls.check("public", "GET", "/healthz", cls.raw("public", http_request("GET", "/healthz", headers=["X-Pad: " + "a" * 9000])),
                  413, what="a header over 8 KiB")

    @classmethod
    def exercise_timeouts(cls):
        stalled = []
        for listener, method, path in cls.documented_operations():
            conn = RawClient(cls.address[listener], timeout=REQUEST_TIMEOUT + 5)
            conn.send(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n".encode())  # and nothing more
            stalled.append((listener, method, path, conn))
        started = time.monotonic()
        for listener, method, path, conn in stalled:
            with conn:
                cls.check(listener, method, path, conn.response(), 408, what="stalled")
        if not REQUEST_TIMEOUT - 0.5 <= time.monotonic() - started <= REQUEST_TIMEOUT + 3:
            cls.problems.append(f"408s after {time.monotonic() - started:.1f} s with request_timeout {REQUEST_TIMEOUT} s")

    @classmethod
    def exercise_connection_caps(cls):
        """Each listener filled with connections that have started a request; the next one gets 429."""
        operations = cls.documented_operations()
        barrier = {"issuer": "/healthz", "admin": "/v1/admin/none", "public": "/healthz"}
        for listener, cap in CONNECTION_CAPS.items():
            family = socket.AF_INET if listener == "public" else socket.AF_UNIX
            busy = []
            try:
                started = time.monotonic()
                for _ in range(cap - 1):
                    s = socket.socket(family, socket.SOCK_STREAM)
                    s.connect(cls.address[listener])
                    s.sendall(b"G")  # a request has started: the connection is not idle, nor closed for room
                    busy.append(s)
                # The last one is answered first, so the daemon has read the first bytes sent before it; the
                # byte after its request starts the next one at once (it is never idle either).
                last = RawClient(cls.address[listener], timeout=10)
                busy.append(last.sock)
                if last.send(http_request("GET", barrier[listener]) + b"G").response() is None:
                    cls.problems.append(f"{listener}: connection {cap} was not answered")
                time.sleep(0.05)
                for _, method, path in (o for o in operations if o[0] == listener):
                    cls.check(listener, method, path, cls.raw(listener, http_request(method, path)), 429,
                              what=f"{cap} busy connections")
                if time.monotonic() - started > REQUEST_TIMEOUT - 0.5:
                    cls.problems.append(f"{listener}: filling {cap} connections took longer than request_timeout")
            finally:
                for s in busy:
                    s.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the daemon notices the closes
            if cls.call("issuer", "GET", "/healthz").status == 200:
                break
            time.sleep(0.1)

    @classmethod
    def exercise_metrics(cls):
        answer = cls.check("issuer", "GET", "/metrics", cls.call("issuer", "GET", "/metrics"), 200)
        cls.metrics_text = answer.body.decode()
        cls.counted = {(m.group(1), int(m.group(2))) for m in re.finditer(
            r'(?m)^hsmsignd_requests_total\{route="([a-z]+)",status="([0-9]+)"\} [1-9][0-9]*$', cls.metrics_text)}
        try:
            cls.families = prometheus_families(cls.metrics_text)
        except ValueError as e:
            cls.problems.append(f"/metrics: {e}")

    # --- the tests --------------------------------------------------------------------------------

    def test_the_document_lints_clean(self):
        self.assertIsNotNone(self.lint, f"{REDOCLY} is missing: run scripts/install-deps.sh (npm ci)")
        out, err = self.lint.communicate(timeout=120)
        self.assertEqual(self.lint.returncode, 0, err.decode())
        report = json.loads(out)
        self.assertEqual(report["totals"], {"errors": 0, "warnings": 0, "ignored": 0},
                         json.dumps(report["problems"], indent=1))
        self.assertEqual(report["problems"], [])

    def test_every_answer_matches_the_document(self):
        print(f"\n  {sum(self.seen.values())} answers checked in {self.took:.1f} s", flush=True)
        self.assertEqual(self.problems, [], "\n" + "\n".join(self.problems))
        self.assertEqual(self.stopped, 0, "the daemon did not stop cleanly")

    def test_every_documented_answer_was_produced(self):
        documented = {(path, method, int(status)) for path, method, op in self.spec.operations()
                      for status in op["responses"]}
        self.assertEqual(sorted(documented - set(self.seen)), [], "documented, never produced")
        self.assertEqual(sorted(set(self.seen) - documented), [], "produced, not documented")
        operations = {(listener, path, method) for path, method, _ in self.spec.operations()
                      for listener in self.spec.listeners(path, method)}
        self.assertEqual(sorted(operations - self.served), [], "operations never served on a listener they list")
        print("\n  " + "\n  ".join(f"{m.upper():4} {p} {s}" for p, m, s in sorted(self.seen)), flush=True)

    def test_the_listeners_are_declared_once_each(self):
        self.assertEqual(sorted(s["x-listener"] for s in self.spec.doc["servers"]), ["admin", "issuer", "public"])
        tags = {t["name"] for t in self.spec.doc["tags"]}
        for path, method, op in self.spec.operations():
            self.assertEqual(set(op["tags"]), self.spec.listeners(path, method) & tags, f"{method} {path}: tags")

    def test_every_route_in_the_source_is_documented(self):
        literals = {}
        for source in sorted(API_SOURCES.glob("*.cpp")):
            for route in re.findall(r'"(/[^"\s]*)"', source.read_text()):
                literals.setdefault(route, set()).add(source.name)
        self.assertIn("/v1/jwt", literals, "no route literal found: has daemon/api moved?")

        def documented(route):
            """The documented path a literal names: itself; or, for a prefix literal (ending in "/", matched
            with starts_with in the source), the one templated path whose fixed part, before its first
            parameter, is exactly that prefix (/statuslists/ is /statuslists/{keyset}/{window})."""
            if route in self.spec.paths:
                return route
            templated = [p for p in self.spec.paths if "{" in p and p[:p.index("{")] == route]
            return templated[0] if route.endswith("/") and len(templated) == 1 else None

        # The routes each handler of issuer_api.cpp serves: the literals in its body, and the constants it uses.
        issuer = (API_SOURCES / "issuer_api.cpp").read_text()
        constants = dict(re.findall(r'(k\w+) = "(/[^"\s]*)"', issuer))

        def routes_of(handler):
            body = re.search(rf"void IssuerApi::{handler}\(.*?\n}}\n", issuer, re.S).group(0)
            return set(re.findall(r'"(/[^"\s]*)"', body)) | {v for k, v in constants.items() if re.search(rf"\b{k}\b", body)}
        handled = {"issuer": routes_of("handle"), "public": routes_of("handle_public")}

        for route, files in sorted(literals.items()):
            path = documented(route)
            self.assertIsNotNone(path, f"{route} ({', '.join(sorted(files))}) is not in docs/openapi.yaml")
            served = set().union(*(self.spec.listeners(path, m) for m in METHODS if m in self.spec.paths[path]))
            for name in files:
                if name == "issuer_api.cpp":
                    # A route of issuer_api.cpp is on the listeners whose handler names it (the issuer socket's
                    # when neither does: a literal of route_of, say).
                    listeners = {l for l, routes in handled.items() if route in routes} or {"issuer"}
                elif name == "admin_api.cpp":
                    listeners = {"admin"}
                else:
                    # Code both sockets share (token_api.cpp: revoke and verify): the admin routes are /v1/admin/.
                    listeners = {"admin" if route.startswith("/v1/admin/") else "issuer"}
                self.assertLessEqual(listeners, served, f"{route} in {name}")
        # The loopback listener's routes are those of handle_public.
        documented_public = {p for p, m, _ in self.spec.operations() if "public" in self.spec.listeners(p, m)}
        self.assertEqual({documented(r) for r in handled["public"]}, documented_public, "the JWKS listener's routes")
        self.assertEqual({documented(r) for r in literals}, set(self.spec.paths), "paths in the document that no source serves")

    def test_the_metric_families_are_the_documented_ones(self):
        description = self.spec.paths["/metrics"]["get"]["description"]
        documented = set(re.findall(r"`(hsmsignd_[a-z_]+)`", description))
        self.assertEqual(self.families, documented, self.metrics_text[:2000])

    def test_metrics_count_the_statuses_answered(self):
        # hsmsignd_requests_total{route,status}: the statuses the daemon answered, and no other.
        statuses = {status for _, _, status in self.seen} | {404}
        never = sorted((route, status) for route, status in self.counted if status not in statuses)
        self.assertEqual(never, [], "hsmsignd_requests_total counts statuses the daemon never answered")
        self.assertIn(("jwks", 304), self.counted, "the JWK Set's 304s are not counted as 304")
        expected = {("jwt", 200), ("jwt", 403), ("jwt", 429), ("admin", 404), ("healthz", 503), ("revoke", 200),
                    ("revoke", 403), ("revoke", 429), ("revoke", 503), ("verify", 200), ("verify", 400),
                    ("statuslist", 200), ("statuslist", 304), ("statuslist", 404), ("statuslist", 405),
                    ("statuslist", 503)}
        self.assertEqual(expected - self.counted, set(), sorted(self.counted))

    def test_the_validation_can_fail(self):
        answer, ptr = self.samples[("/v1/jwt", "post", 200)]
        body = answer.json
        schema_ptr = f"{ptr}/content/application~1json/schema"
        self.assertEqual(self.spec.errors(schema_ptr, body), [])
        without_kid = {k: v for k, v in body.items() if k != "kid"}
        self.assertTrue(self.spec.errors(schema_ptr, without_kid), "a missing kid passed")
        self.assertTrue(self.spec.errors(schema_ptr, {**body, "extra": 1}), "an unknown member passed")
        self.assertTrue(self.spec.errors(schema_ptr, {**body, "iat": str(body["iat"])}), "a string iat passed")
        self.assertTrue(self.spec.errors(schema_ptr, {**body, "kid": body["kid"][:-1]}), "a 42-character kid passed")
        # Through check_response too: an answer with a member removed, or without its required header.
        broken = copy.copy(answer)
        broken.body = json.dumps(without_kid).encode()
        self.assertTrue(any("kid" in p for p in self.check_response(self.spec.at(ptr), ptr, broken)))
        jwks, jwks_ptr = self.samples[("/.well-known/jwks.json", "get", 200)]
        no_etag = copy.copy(jwks)
        no_etag.headers = {k: v for k, v in jwks.headers.items() if k != "etag"}
        self.assertIn("header ETag is missing", self.check_response(self.spec.at(jwks_ptr), jwks_ptr, no_etag))
        with_private_key = strict_json(jwks.body)
        with_private_key["keys"][0]["d"] = with_private_key["keys"][0]["x"]
        self.assertTrue(self.spec.errors(f"{jwks_ptr}/content/application~1json/schema", with_private_key),
                        "a JWK with a private member passed")


if __name__ == "__main__":
    unittest.main()
