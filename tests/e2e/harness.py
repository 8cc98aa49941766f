"""End-to-end fixture: the real hsmsignd on a throw-away SoftHSM token, and small clients to talk to it.

    with Daemon(keysets=[("es", "ES256")]) as daemon:
        answer = daemon.post("/v1/jwt", {"sub": "user-1"})
        header, claims = verify_jwt(answer.json["jwt"], daemon.jwks_json(), "ES256")

The binaries come from $HSMSIGND_BIN and $HSMSIGND_CTL, the token script from $HSMSIGND_MAKE_TOKEN
(CTest sets all three). A missing binary or SoftHSM is a failure, never a skip.
"""
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

from jwcrypto import jwk, jws, jwt

HERE = Path(__file__).resolve().parent
SOURCE_ROOT = HERE.parent.parent
PIN = "e2e-throwaway-pin"  # a test token's PIN: worthless outside the tempdir it lives in
MODULE = "/usr/lib/softhsm/libsofthsm2.so"
TOKEN_LABEL = "hsmsignd-e2e"
ISSUER = "https://auth.example.com"
AUDIENCES = ["api-gateway", "billing"]
# The daemon refuses root unless told; the tests run as root on throw-away tokens.
ROOT_FLAG = ("--allow-root",) if os.geteuid() == 0 else ()
START_TIMEOUT = 30.0  # RSA keys are generated inside SoftHSM at first start
STOP_TIMEOUT = 10.0


def binary(variable, fallback):
    path = os.environ.get(variable) or str(SOURCE_ROOT / fallback)
    if not os.access(path, os.X_OK):
        raise AssertionError(f"{variable}: {path} is not an executable; build it first")
    return path


def hsmsignd_bin():
    return binary("HSMSIGND_BIN", "build/daemon/hsmsignd")


def hsmsignctl_bin():
    return binary("HSMSIGND_CTL", "build/tools/hsmsignctl")


def make_token_script():
    return binary("HSMSIGND_MAKE_TOKEN", "softhsm-config/make-token.sh")


def fault_shim():
    """The fault-injecting PKCS#11 module (tests/fault/): $HSMSIGND_FAULT_SHIM, else the one built beside
    $HSMSIGND_BIN (BUILD/daemon/hsmsignd -> BUILD/tests/fault/libhsmsignd-fault-shim.so)."""
    path = os.environ.get("HSMSIGND_FAULT_SHIM") or str(
        Path(hsmsignd_bin()).resolve().parent.parent / "tests" / "fault" / "libhsmsignd-fault-shim.so")
    if not os.path.isfile(path):
        raise AssertionError(f"HSMSIGND_FAULT_SHIM: {path} is not the fault shim; build it first")
    return path


def free_port():
    """A loopback port nobody listens on right now (the kernel picks it when binding port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- configuration ---------------------------------------------------------------------------------

def client(name="e2e", uids=(0,), keysets=("default",), operations=("jwt", "jws", "sign"),
           issuer=ISSUER, audiences=AUDIENCES, max_ttl="15m", default_ttl="5m", **extra):
    """One [[client]] table; the tests run as root, so uid 0 is the usual peer."""
    return {"name": name, "uids": list(uids), "keysets": list(keysets), "operations": list(operations),
            "issuer": issuer, "audiences": list(audiences), "max_ttl": max_ttl, "default_ttl": default_ttl,
            **extra}


def toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def render_toml(config):
    """Tables ({...}) become [name], lists of tables ([{...}]) become [[name]]; insertion order kept."""
    lines = []
    for name, table in config.items():
        for entry in (table if isinstance(table, list) else [table]):
            lines.append(f"[[{name}]]" if isinstance(table, list) else f"[{name}]")
            lines += [f"{key} = {toml_value(value)}" for key, value in entry.items()]
            lines.append("")
    return "\n".join(lines)


# --- HTTP over the Unix socket ---------------------------------------------------------------------

class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    @property
    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.status} {self.body[:300]!r}>"


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10.0):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = str(path)

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)

    def call(self, method, path, body=None, headers=None):
        """One request on this (kept-alive) connection; a dict or list body is sent as JSON."""
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        self.request(method, path, body=body, headers=headers)
        answer = self.getresponse()
        return Response(answer.status, answer.getheaders(), answer.read())


def read_response(stream):
    """Parses one HTTP/1.1 response from anything with readline() and read(n); None when the peer closed."""
    status_line = stream.readline()
    if not status_line:
        return None
    status = int(status_line.split()[1])
    headers = []
    while (line := stream.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
    lengths = [v for k, v in headers if k.lower() == "content-length"]
    chunked = any(k.lower() == "transfer-encoding" and "chunked" in v.lower() for k, v in headers)
    if chunked:
        body = b""
        while (size := int(stream.readline().split(b";")[0], 16)) > 0:
            body += stream.read(size)
            stream.readline()
        stream.readline()
    else:
        body = stream.read(int(lengths[0])) if lengths else b""
    return Response(status, headers, body)


class RawClient:
    """A socket that sends exactly the bytes it is given: for malformed, pipelined and slow requests.

    Reads through its own buffer, not makefile(): a file object is unusable after one timeout."""

    def __init__(self, address, timeout=10.0):
        family = socket.AF_UNIX if isinstance(address, (str, Path)) else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.timeout = timeout
        self.sock.settimeout(timeout)
        self.sock.connect(str(address) if family == socket.AF_UNIX else address)
        self.buffer = bytearray()
        self.eof = False

    def send(self, data: bytes):
        self.sock.sendall(data)
        return self

    def _fill(self):
        chunk = self.sock.recv(65536)
        self.eof = not chunk
        self.buffer += chunk
        return bool(chunk)

    def readline(self):
        while b"\n" not in self.buffer and not self.eof and self._fill():
            pass
        end = self.buffer.find(b"\n") + 1 or len(self.buffer)
        line, self.buffer = bytes(self.buffer[:end]), self.buffer[end:]
        return line

    def read(self, n):
        while len(self.buffer) < n and not self.eof and self._fill():
            pass
        data, self.buffer = bytes(self.buffer[:n]), self.buffer[n:]
        return data

    def response(self):
        return read_response(self)

    def closed_by_peer(self, within=3.0):
        """True when the daemon closes the connection (EOF or reset) within the bound, sending nothing more."""
        if self.buffer:
            return False
        self.sock.settimeout(within)
        try:
            return not self._fill()
        except ConnectionResetError:
            return True
        except (socket.timeout, TimeoutError):
            return False
        finally:
            self.sock.settimeout(self.timeout)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def http_request(method, path, body=b"", headers=()):
    """The exact bytes of a simple HTTP/1.1 request."""
    head = [f"{method} {path} HTTP/1.1", "Host: localhost"] + list(headers)
    if body or method == "POST":
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


# --- verification ----------------------------------------------------------------------------------

def verify_jwt(token, jwks_json, alg):
    """Verifies signature (kid picked from the JWK Set), exp and nbf; returns (header, claims)."""
    keyset = jwk.JWKSet.from_json(jwks_json if isinstance(jwks_json, str) else json.dumps(jwks_json))
    checked = jwt.JWT(jwt=token, key=keyset, algs=[alg])
    return json.loads(checked.header), json.loads(checked.claims)


def verify_jws(compact, jwks_json, alg):
    """Verifies a compact JWS against the key its kid names; returns (header, payload bytes)."""
    keyset = jwk.JWKSet.from_json(jwks_json if isinstance(jwks_json, str) else json.dumps(jwks_json))
    token = jws.JWS()
    token.allowed_algs = [alg]
    token.deserialize(compact)
    key = keyset.get_key(token.jose_header["kid"])
    if key is None:
        raise AssertionError(f"kid {token.jose_header['kid']} is not in the JWK Set")
    token.verify(key)
    return token.jose_header, token.payload


def flip_char(text, index):
    """The same string with one base64url character changed (still valid base64url)."""
    replacement = "A" if text[index] != "A" else "B"
    return text[:index] + replacement + text[index + 1:]


def decode_segment(segment):
    return json.loads(b64url_decode(segment))


def stop_process(process, timeout=10.0):
    """SIGTERM, then SIGKILL after a bound, for any child process a test started."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- the daemon --------------------------------------------------------------------------------------

class DaemonError(AssertionError):
    pass


class Daemon:
    """The real hsmsignd on a fresh token in its own tempdir.

    keysets: [(name, algorithm)] or [{...keyset table...}]; clients: [client(...)]; server/jwks/token:
    extra keys for those tables; revocation/verify: those tables, absent unless given. `config` is the
    dict written as TOML (edit it, then restart())."""

    def __init__(self, keysets=(("default", "ES256"),), clients=None, server=None, jwks=None, token=None,
                 revocation=None, verify=None, token_factory=None):
        """token_factory: a class of tokens.py (SoftHSMToken, NSSToken, TPMToken, P11KitRemoteToken): the token
        is made by it in workdir/token, its helper processes are stopped in cleanup(), and its [token] table
        and environment are the daemon's. None (the default): a SoftHSM token made by make-token.sh."""
        self.workdir = Path(tempfile.mkdtemp(prefix="e2e-"))
        self.process = None
        self.stderr_path = None
        self.starts = 0
        self.token_factory = None
        # uid 65534 with gid 0 must reach the 0660 socket (the non-client test): group may traverse.
        os.chmod(self.workdir, 0o750)
        (self.workdir / "run").mkdir(mode=0o750, exist_ok=True)
        self.port = free_port()
        try:
            if token_factory is None:
                self.token_env = self._make_token()
                token_table = {"module": MODULE, "label": TOKEN_LABEL, "pin_file": "token/pin"}
            else:
                self.token_factory = token_factory(self.workdir / "token", TOKEN_LABEL, PIN)
                self.token_factory.create()
                self.token_env = self.token_factory.env()
                token_table = self.token_factory.token_table("token/pin")
        except BaseException:
            self.cleanup()
            raise
        keysets = [k if isinstance(k, dict) else {"name": k[0], "algorithm": k[1]} for k in keysets]
        self.config = {
            "token": {**token_table, **(token or {})},
            "server": {"socket": "run/sign.sock", "admin_socket": "run/admin.sock", **(server or {})},
            "jwks": {"listen": f"127.0.0.1:{self.port}", "file": "run/jwks.json", "max_age": "5m", **(jwks or {})},
            "state": {"dir": "state"},
            "audit": {"file": "log/audit.jsonl"},
            **({"revocation": revocation} if revocation is not None else {}),
            **({"verify": verify} if verify is not None else {}),
            "keyset": keysets,
            "client": clients if clients is not None else [client(keysets=[k["name"] for k in keysets])],
        }
    # paths
    @property
    def socket_path(self):
        return self.workdir / self.config["server"]["socket"]

    @property
    def jwks_path(self):
        return self.workdir / self.config["jwks"]["file"]

    @property
    def config_path(self):
        return self.workdir / "hsmsignd.toml"

    def _make_token(self):
        env = dict(os.environ, HSMSIGND_PIN=PIN)
        out = subprocess.run([make_token_script(), str(self.workdir / "token"), TOKEN_LABEL], env=env,
                             capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise DaemonError(f"make-token.sh failed ({out.returncode}): {out.stderr}")
        conf = out.stdout.strip().rpartition("SOFTHSM2_CONF=")[2]
        return dict(os.environ, SOFTHSM2_CONF=conf)

    def write_config(self, text=None, name="hsmsignd.toml"):
        """Writes self.config (or the given text) beside the token; relative paths resolve the same."""
        path = self.workdir / name
        path.write_text(text if text is not None else render_toml(self.config))
        return path

    def variant(self, name, **tables):
        """Another config file: self.config with some tables' keys replaced, e.g. token={"label": "x"}."""
        config = {table: ({**value, **tables.get(table, {})} if isinstance(value, dict) else value)
                  for table, value in self.config.items()}
        return self.write_config(render_toml(config), name)

    # running
    def run_binary(self, *args, config=None, timeout=30):
        """hsmsignd with --config and args, to completion (for --check and refused configs)."""
        return subprocess.run([hsmsignd_bin(), "--config", str(config or self.config_path), *ROOT_FLAG, *args],
                              env=self.token_env, capture_output=True, text=True, timeout=timeout)

    def ctl(self, *args, timeout=30):
        return subprocess.run([hsmsignctl_bin(), "--config", str(self.config_path), *args], env=self.token_env,
                              capture_output=True, text=True, timeout=timeout)

    def spawn(self, config=None):
        """Starts a daemon process without waiting for it (a second one on the same socket, say)."""
        self.starts += 1
        stderr_path = self.workdir / f"stderr.{self.starts}.log"
        with open(stderr_path, "wb") as err:
            process = subprocess.Popen([hsmsignd_bin(), "--config", str(config or self.config_path), *ROOT_FLAG],
                                       env=self.token_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=err)
        return process, stderr_path

    def start(self):
        if self.process is not None:
            raise DaemonError("already running")
        self.write_config()
        self.process, self.stderr_path = self.spawn()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DaemonError(f"hsmsignd exited with {self.process.returncode} while starting:\n{self.stderr}")
            if self.socket_path.exists():
                try:
                    if self.get("/healthz", timeout=2).status == 200:
                        return self
                except OSError:
                    pass
            time.sleep(0.05)
        self.kill()
        raise DaemonError(f"hsmsignd did not answer /healthz within {START_TIMEOUT}s:\n{self.stderr}")

    def stop(self):
        """SIGTERM, then SIGKILL after a bound; returns the exit status."""
        if self.process is None:
            return None
        self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            status = "killed after SIGTERM timed out"
        self.process = None
        return status

    def kill(self):
        """SIGKILL: a crash, leaving the socket file behind."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def restart(self):
        self.stop()
        return self.start()

    @property
    def stderr(self):
        return self.stderr_path.read_text(errors="replace") if self.stderr_path else ""

    def cleanup(self):
        self.kill()
        if self.token_factory is not None:
            self.token_factory.stop()  # the token's helper processes, by pid
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        self.cleanup()

    # talking to it
    def connection(self, timeout=10.0):
        return UnixHTTPConnection(self.socket_path, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=10.0):
        conn = self.connection(timeout)
        try:
            return conn.call(method, path, body, headers)
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.request("POST", path, body, **kw)

    def raw(self, timeout=10.0):
        return RawClient(self.socket_path, timeout)

    def public(self, method, path, headers=None, body=None):
        """A request to the loopback JWKS listener."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            answer = conn.getresponse()
            return Response(answer.status, answer.getheaders(), answer.read())
        finally:
            conn.close()

    def jwks_json(self):
        answer = self.public("GET", "/.well-known/jwks.json")
        if answer.status != 200:
            raise DaemonError(f"GET /.well-known/jwks.json on the listener: {answer}")
        return answer.body.decode()

    def jwks_file_json(self):
        return self.jwks_path.read_text()

    def jwt(self, **request):
        """A token for sub "user-1" (unless given); fails the test unless the daemon answers 200."""
        request.setdefault("sub", "user-1")
        answer = self.post("/v1/jwt", request)
        if answer.status != 200:
            raise DaemonError(f"POST /v1/jwt {request}: {answer}")
        return answer.json


class DaemonTestCase(unittest.TestCase):
    """One daemon for the whole class (starting one per test would cost seconds each).

    Subclasses set DAEMON = dict(keysets=..., clients=..., server=..., jwks=...)."""

    DAEMON = {}

    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon(**cls.DAEMON)
        try:
            cls.daemon.start()
        except BaseException:
            cls.daemon.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()
        cls.daemon.cleanup()

    def assertError(self, answer, status, code):
        """The contract's error shape: {"error": code, "message": non-empty text}, JSON."""
        self.assertEqual(answer.status, status, answer)
        self.assertIn("application/json", answer.headers.get("content-type", ""), answer)
        body = answer.json
        self.assertEqual(body.get("error"), code, answer)
        self.assertIsInstance(body.get("message"), str, answer)
        self.assertTrue(body["message"].strip(), answer)

    def assertStillServes(self):
        """A good client still gets a verifiable token afterwards."""
        answer = self.daemon.post("/v1/jwt", {"sub": "after"})
        self.assertEqual(answer.status, 200, answer)
        self.assertEqual(answer.json["jwt"].count("."), 2)


class FreshDaemonTestCase(unittest.TestCase):
    """A daemon of each test's own, for tests that kill, restart or reconfigure it."""

    def setUp(self):
        self.daemon = Daemon()
        self.addCleanup(self.daemon.cleanup)
        self.daemon.start()


# Runs as another uid: the requests given as JSON [[method, path, body], ...] on one socket, one connection
# each; prints [{"status": ..., "body": ...}, ...].
PEER_SCRIPT = r"""
import http.client, json, socket, sys
class Conn(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(sys.argv[1])
out = []
for method, path, body in json.loads(sys.argv[2]):
    conn = Conn("localhost")
    conn.request(method, path, body=None if body is None else json.dumps(body),
                 headers={"Content-Type": "application/json"})
    answer = conn.getresponse()
    out.append({"status": answer.status, "body": answer.read().decode()})
    conn.close()
print(json.dumps(out))
"""


RAW_PEER_SCRIPT = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(bytes.fromhex(sys.argv[2]))
s.shutdown(socket.SHUT_WR)
answer = b""
while chunk := s.recv(65536):
    answer += chunk
sys.stdout.write(answer.hex())
"""


def raw_as_uid(uid, socket_path, data):
    """The bytes `data` sent as they are by a process of another uid; the daemon's answer, as bytes."""
    out = subprocess.run(["setpriv", f"--reuid={uid}", "--regid=0", "--clear-groups", "/usr/bin/python3", "-c",
                          RAW_PEER_SCRIPT, str(socket_path), data.hex()], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return bytes.fromhex(out.stdout)


def as_uid(uid, socket_path, requests):
    """Requests made by a process of another uid (gid 0, so that the 0660 socket is reachable)."""
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to run a request as another uid"
    assert os.geteuid() == 0, "the e2e tests run as root, so that they can become other uids"
    out = subprocess.run([setpriv, f"--reuid={uid}", "--regid=0", "--clear-groups", "/usr/bin/python3", "-c",
                          PEER_SCRIPT, str(socket_path), json.dumps(requests)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)
