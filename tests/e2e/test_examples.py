"""The issuer examples run: docs/examples/issue_token.js and issue_token.py, as commands and as modules, and
the curl line and inline snippets of docs/issuers.md, against the real daemon. Every token they print is
verified by jwcrypto against the JWKS of the public listener. Node.js missing is a failure, not a skip."""
import importlib.util
import json
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import unittest

from harness import AUDIENCES, ISSUER, SOURCE_ROOT, DaemonTestCase, client, verify_jwt

ISSUERS_MD = SOURCE_ROOT / "docs" / "issuers.md"
NODE_EXAMPLE = SOURCE_ROOT / "docs" / "examples" / "issue_token.js"
PYTHON_EXAMPLE = SOURCE_ROOT / "docs" / "examples" / "issue_token.py"
ALG = "ES256"  # the verifier's allow-list: the harness's default keyset, never what the token says
DOC_SOCKET = "/run/hsmsignd/sign.sock"  # the path docs/issuers.md is written with
TEMPFAIL = 75  # the examples' exit status for a retryable failure


def tool(name):
    path = shutil.which(name)
    if path is None:
        raise AssertionError(f"{name} is needed to run the issuer examples; scripts/install-deps.sh installs it")
    return path


def run(*args, timeout=30):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)


def doc_block(language, containing):
    """The one fenced block of docs/issuers.md in `language` that holds `containing`, exactly as written."""
    blocks = re.findall(rf"^```{language}\n(.*?)^```$", ISSUERS_MD.read_text(), re.M | re.S)
    found = [b for b in blocks if containing in b]
    if len(found) != 1:
        raise AssertionError(f"docs/issuers.md has {len(found)} ```{language} blocks holding {containing!r}, not 1")
    return found[0]


def python_example():
    """docs/examples/issue_token.py as a module, loaded from its file (leaving no __pycache__ in docs/)."""
    spec = importlib.util.spec_from_file_location("issue_token", PYTHON_EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    dont_write, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = dont_write
    return module


class ExamplesTest(DaemonTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.jwks = cls.daemon.jwks_json()
        cls.socket = str(cls.daemon.socket_path)

    def node(self, *args, socket_path=None):
        return run(tool("node"), NODE_EXAMPLE, "--socket", socket_path or self.socket, *args)

    def python(self, *args, socket_path=None):
        return run(sys.executable, PYTHON_EXAMPLE, "--socket", socket_path or self.socket, *args)

    def printed_answer(self, out):
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stderr, "")
        return json.loads(out.stdout)

    def assertToken(self, answer, sub, aud, ttl, private):
        """The answer's token verifies (signature, alg, exp, nbf) and holds what was asked for."""
        self.assertEqual(set(answer), {"jwt", "kid", "alg", "jti", "iat", "exp"}, answer)
        header, claims = verify_jwt(answer["jwt"], self.jwks, ALG)
        self.assertEqual(header, {"alg": ALG, "kid": answer["kid"], "typ": "JWT"})
        self.assertEqual(answer["alg"], ALG)
        self.assertEqual((claims["iss"], claims["sub"], claims["aud"]), (ISSUER, sub, aud))
        self.assertEqual(claims["exp"] - claims["iat"], ttl)
        self.assertEqual(claims["nbf"], claims["iat"])
        self.assertEqual((answer["jti"], answer["iat"], answer["exp"]), (claims["jti"], claims["iat"], claims["exp"]))
        for name, value in private.items():
            self.assertEqual(claims[name], value, name)
        self.assertLessEqual(abs(claims["iat"] - time.time()), 5)

    def daemon_refusal(self, request):
        answer = self.daemon.post("/v1/jwt", request)
        self.assertError(answer, 400, "bad_request")
        return answer.json["message"]

    def assertReportsRefusal(self, out, message):
        """Exit 1 (not retryable), nothing on stdout, the daemon's status, code and message on stderr."""
        self.assertEqual(out.returncode, 1, out)
        self.assertEqual(out.stdout, "")
        self.assertIn("400 bad_request", out.stderr)
        self.assertIn(message, out.stderr)

    def silent_socket(self):
        """A Unix socket that takes connections (into its backlog) and never answers."""
        path = self.daemon.workdir / "silent.sock"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
        listener.listen(8)
        self.addCleanup(path.unlink)
        self.addCleanup(listener.close)
        return str(path)

    # --- the Node.js example ---------------------------------------------------------------------

    def test_node_command_prints_a_token_that_verifies(self):
        out = self.node("--sub", "alice", "--aud", "billing", "--ttl", "120", "--claim", "role=admin",
                        "--claim", "n=5", "--claim", 'scope="a b"')
        self.assertToken(self.printed_answer(out), "alice", "billing", 120, {"role": "admin", "n": 5, "scope": "a b"})

    def test_node_command_reports_the_daemons_error(self):
        message = self.daemon_refusal({"sub": "alice", "ttl": 3600})
        self.assertIn("max_ttl", message)
        self.assertReportsRefusal(self.node("--sub", "alice", "--ttl", "3600"), message)

    def test_node_module_resolves_a_token_and_rejects_with_the_error(self):
        script = r"""
const [modulePath, socketPath] = process.argv.slice(1);
const {issueToken, IssueError} = require(modulePath);
const fields = (err) => ({isIssueError: err instanceof IssueError && err instanceof Error, status: err.status,
                          code: err.code, message: err.message, retryable: err.retryable});
(async () => {
  const answer = await issueToken({socketPath, sub: 'svc:node', aud: ['api-gateway', 'billing'], ttl: 60,
                                   claims: {tier: 'gold'}});
  const forbidden = await issueToken({socketPath, sub: 'svc:node', aud: 'elsewhere'}).catch(fields);
  const missing = await issueToken({socketPath: socketPath + '.missing', sub: 'x', retries: 0}).catch(fields);
  console.log(JSON.stringify({answer, forbidden, missing}));
})().catch((err) => { console.error(err); process.exit(3); });
"""
        out = run(tool("node"), "-e", script, NODE_EXAMPLE, self.socket)
        result = self.printed_answer(out)
        self.assertToken(result["answer"], "svc:node", ["api-gateway", "billing"], 60, {"tier": "gold"})
        expected = self.daemon.post("/v1/jwt", {"sub": "svc:node", "aud": "elsewhere"})
        self.assertError(expected, 403, "forbidden")
        forbidden = result["forbidden"]
        self.assertEqual((forbidden["isIssueError"], forbidden["status"], forbidden["code"], forbidden["retryable"]),
                         (True, 403, "forbidden", False))
        self.assertIn(expected.json["message"], forbidden["message"])
        missing = result["missing"]
        self.assertEqual((missing.get("status"), missing["code"], missing["retryable"]), (None, "ENOENT", True))

    def test_node_times_out_on_a_socket_that_never_answers(self):
        started = time.monotonic()
        out = self.node("--sub", "alice", "--timeout", "0.3", "--retries", "0", socket_path=self.silent_socket())
        self.assertEqual(out.returncode, TEMPFAIL, out)
        self.assertIn("no answer", out.stderr)
        self.assertLess(time.monotonic() - started, 5)

    # --- the Python example ----------------------------------------------------------------------

    def test_python_command_prints_a_token_that_verifies(self):
        out = self.python("--sub", "bob", "--aud", "api-gateway", "--aud", "billing", "--ttl", "60",
                          "--claim", "role=reader", "--claim", "flags=[1,2]")
        self.assertToken(self.printed_answer(out), "bob", ["api-gateway", "billing"], 60,
                         {"role": "reader", "flags": [1, 2]})

    def test_python_command_reports_the_daemons_error(self):
        message = self.daemon_refusal({"sub": "bob", "ttl": 901})
        self.assertReportsRefusal(self.python("--sub", "bob", "--ttl", "901"), message)

    def test_python_module_keeps_its_connection_alive_and_raises_the_error(self):
        example = python_example()
        connection = example.UnixHTTPConnection(self.socket)
        self.addCleanup(connection.close)
        first = example.issue_token("svc:python", ttl=45, claims={"k": "v"}, connection=connection)
        sock = connection.sock
        self.assertToken(first, "svc:python", AUDIENCES[0], 45, {"k": "v"})
        for _ in range(3):
            self.assertToken(example.issue_token("svc:python", ttl=45, connection=connection),
                             "svc:python", AUDIENCES[0], 45, {})
        self.assertIs(connection.sock, sock, "the connection was not kept alive")
        with self.assertRaises(example.IssueError) as refused:
            example.issue_token("svc:python", claims={"iss": "https://evil.example"}, connection=connection)
        e = refused.exception
        self.assertEqual((e.status, e.code, e.retryable), (400, "bad_request", False))
        self.assertIn("iss", e.message)
        with self.assertRaises(example.IssueError) as missing:
            example.issue_token("x", socket_path=self.socket + ".missing", retries=0)
        self.assertEqual((missing.exception.status, missing.exception.code, missing.exception.retryable),
                         (None, "ENOENT", True))

    def test_python_times_out_on_a_socket_that_never_answers(self):
        out = self.python("--sub", "bob", "--timeout", "0.3", "--retries", "0", socket_path=self.silent_socket())
        self.assertEqual(out.returncode, TEMPFAIL, out)
        self.assertIn("timed out", out.stderr)

    # --- docs/issuers.md as written ----------------------------------------------------------------

    def test_the_curl_line_of_issuers_md(self):
        tool("curl")
        line = doc_block("sh", "curl ")
        self.assertIn(DOC_SOCKET, line)
        out = run("bash", "-c", line.replace(DOC_SOCKET, shlex.quote(self.socket)))
        self.assertEqual(out.returncode, 0, out)
        self.assertToken(json.loads(out.stdout), "alice", "api-gateway", 300, {"role": "admin"})

    def test_the_node_snippet_of_issuers_md(self):
        driver = r"""
const socketPath = process.argv[1];
(async () => {
  const answer = await getToken(socketPath, {sub: 'carol', aud: 'billing', ttl: 90, claims: {role: 'admin'}});
  const refused = await getToken(socketPath, {sub: 'carol', ttl: 3600}).catch((e) => ({status: e.status, code: e.code}));
  console.log(JSON.stringify({answer, refused}));
})().catch((err) => { console.error(err); process.exit(3); });
"""
        out = run(tool("node"), "-e", doc_block("js", "function getToken") + driver, self.socket)
        result = self.printed_answer(out)
        self.assertToken(result["answer"], "carol", "billing", 90, {"role": "admin"})
        self.assertEqual(result["refused"], {"status": 400, "code": "bad_request"})

    def test_the_python_snippet_of_issuers_md(self):
        driver = "\nimport sys\nprint(json.dumps(get_token(UnixHTTPConnection(sys.argv[1]), json.loads(sys.argv[2]))))\n"
        request = {"sub": "dave", "ttl": 75, "claims": {"role": "ops"}}
        out = run(sys.executable, "-c", doc_block("python", "def get_token") + driver, self.socket, json.dumps(request))
        self.assertToken(self.printed_answer(out), "dave", AUDIENCES[0], 75, {"role": "ops"})

    def test_one_request_per_connection_as_the_rust_sketch_sends_it(self):
        # The sketch reads to end of stream: the daemon must close after answering a Connection: close
        # request, and frame its answer with Content-Length.
        body = json.dumps({"sub": "erin", "ttl": 30}).encode()
        with self.daemon.raw() as conn:
            conn.send(b"POST /v1/jwt HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            answer = conn.response()
            self.assertEqual(answer.status, 200, answer)
            self.assertEqual(int(answer.headers["content-length"]), len(answer.body))
            self.assertNotIn("transfer-encoding", answer.headers)
            self.assertTrue(conn.closed_by_peer(), "the daemon kept a Connection: close connection open")
        self.assertToken(answer.json, "erin", AUDIENCES[0], 30, {})


class RetryAfterTest(DaemonTestCase):
    """A client with max_rate = "1/s": once it has spent its one request, the daemon answers 429 with
    Retry-After: 1, which the examples wait out before they ask again."""
    DAEMON = dict(clients=[client(max_rate="1/s")])

    def spend_the_bucket(self):
        time.sleep(1.1)
        self.assertEqual(self.daemon.post("/v1/jwt", {"sub": "spender"}).status, 200)
        refused = self.daemon.post("/v1/jwt", {"sub": "spender"})
        self.assertError(refused, 429, "overloaded")
        self.assertEqual(refused.headers.get("retry-after"), "1")

    def example(self, language, *args):
        command = {"node": [tool("node"), NODE_EXAMPLE], "python": [sys.executable, PYTHON_EXAMPLE]}[language]
        return run(*command, "--socket", self.daemon.socket_path, *args)

    def refusals(self):
        lines = self.daemon.get("/metrics").body.decode().splitlines()
        return int(next(line for line in lines if line.startswith("hsmsignd_rate_limited_total")).split()[-1])

    def test_each_example_waits_for_retry_after_then_gets_the_token(self):
        jwks = self.daemon.jwks_json()
        for language in ("node", "python"):
            with self.subTest(language=language):
                self.spend_the_bucket()
                refused_before, started = self.refusals(), time.monotonic()
                out = self.example(language, "--sub", "alice", "--ttl", "30")
                waited = time.monotonic() - started
                self.assertEqual(out.returncode, 0, out.stderr)
                _, claims = verify_jwt(json.loads(out.stdout)["jwt"], jwks, ALG)
                self.assertEqual(claims["sub"], "alice")
                self.assertGreaterEqual(self.refusals() - refused_before, 1, "the first attempt was not refused")
                self.assertGreaterEqual(waited, 0.95, "Retry-After: 1 was not honoured")

    def test_each_example_gives_up_on_a_429_when_out_of_retries(self):
        for language in ("node", "python"):
            with self.subTest(language=language):
                self.spend_the_bucket()
                out = self.example(language, "--sub", "alice", "--retries", "0")
                self.assertEqual(out.returncode, TEMPFAIL, out)
                self.assertIn("429 overloaded", out.stderr)


if __name__ == "__main__":
    unittest.main()
