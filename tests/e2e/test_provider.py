"""The OpenSSL provider (hsmsignd.so) driven by programs the project did not write: the `openssl` command
(req, x509, ca, dgst, pkeyutl, s_server, s_client), curl and Debian's nginx, each signing with a key in the
token through the daemon. Every signature is checked by OpenSSL's default provider alone, with no
hsmsignd in the process, against the public key the daemon publishes.

$HSMSIGND_PROVIDER is hsmsignd.so and $HSMSIGND_PROVIDER_CLIENT the fork/thread client (CTest sets both).
"""
import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

from harness import Daemon, b64url_decode, binary, client, free_port, stop_process

PROVIDER = ("-provider", "default", "-provider", "hsmsignd")  # default first: see docs/openssl.md
NGINX = "/usr/sbin/nginx"
KEYSETS = [
    ("default", "ES256"),  # a JWT keyset: its JWKS key checks `openssl dgst` signatures
    {"name": "tls-ec", "algorithm": "ES256", "usage": "tls", "rotation": "manual"},
    {"name": "tls-p384", "algorithm": "ES384", "usage": "tls", "rotation": "manual"},
    {"name": "tls-rsa", "algorithm": "RS256", "usage": "tls", "rotation": "manual", "rsa_bits": 2048},
]
# Root (the tests, an nginx master) and nobody (nginx's workers, which sign the handshakes) are one client.
WORKER_UID = 65534


def provider_module():
    return binary("HSMSIGND_PROVIDER", "build/provider/hsmsignd.so")


def pem_uri(uri):
    body = base64.encodebytes(uri.encode()).decode()
    return f"-----BEGIN HSMSIGND KEY URI-----\n{body}-----END HSMSIGND KEY URI-----\n"


def spki_pem(spki_b64url):
    """PEM as OpenSSL writes it: 64 characters a line."""
    text = base64.b64encode(b64url_decode(spki_b64url)).decode()
    body = "".join(text[i:i + 64] + "\n" for i in range(0, len(text), 64))
    return f"-----BEGIN PUBLIC KEY-----\n{body}-----END PUBLIC KEY-----\n"


def wait_for_port(port, process, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class ProviderFixture(unittest.TestCase):
    """A daemon with a JWT keyset and three tls keysets, and a folder for the files of one test class."""

    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon(keysets=KEYSETS, clients=[
            client(uids=(0, WORKER_UID), keysets=["default", "tls-ec", "tls-p384", "tls-rsa"],
                   operations=["jwt", "sign"])])
        cls.daemon.start()
        cls.dir = Path(tempfile.mkdtemp(prefix="provider-"))
        os.chmod(cls.dir, 0o750)
        cls.env = dict(os.environ, OPENSSL_MODULES=str(Path(provider_module()).parent),
                       HSMSIGND_SOCKET=str(cls.daemon.socket_path))
        # Checks run with no hsmsignd at all: no module path, no socket, default provider only.
        cls.plain_env = {k: v for k, v in os.environ.items() if k not in ("OPENSSL_MODULES", "HSMSIGND_SOCKET",
                                                                          "OPENSSL_CONF")}
        cls.keys = {k["keyset"]: k for k in cls.daemon.get("/v1/keys").json["keys"] if k["state"] == "active"}
        for name, key in cls.keys.items():
            (cls.dir / f"{name}.pub.pem").write_text(spki_pem(key["spki"]))

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()
        cls.daemon.cleanup()
        shutil.rmtree(cls.dir, ignore_errors=True)

    # --- helpers ---------------------------------------------------------------------------------

    def openssl(self, *args, provider=True, check=True, input=None, timeout=60):
        """`openssl COMMAND ...`, with the provider loaded (provider=True) or with OpenSSL's default alone."""
        command, rest = args[0], list(args[1:])
        argv = ["openssl", command, *(PROVIDER if provider else ()), *rest]
        out = subprocess.run(argv, env=self.env if provider else self.plain_env, cwd=self.dir, input=input,
                             capture_output=True, timeout=timeout)
        if check and out.returncode != 0:
            self.fail(f"{' '.join(argv)} exited {out.returncode}:\n{out.stderr.decode(errors='replace')}")
        return out

    def path(self, name):
        return str(self.dir / name)

    def audit_signatures(self):
        lines = (self.daemon.workdir / "log" / "audit.jsonl").read_text().splitlines()
        return [r for r in map(json.loads, lines) if r.get("event") == "sign" and r.get("operation") == "sign"]

    def self_signed(self, keyset, name, *sigopts, san="DNS:localhost,IP:127.0.0.1"):
        """A self-signed certificate whose key is the keyset's active key, made by `openssl req` through
        the provider."""
        self.openssl("req", "-new", "-x509", "-key", f"hsmsignd:keyset={keyset}", "-subj", f"/CN={name}",
                     "-days", "2", "-addext", f"subjectAltName={san}", *sigopts, "-out", self.path(f"{name}.pem"))
        return self.path(f"{name}.pem")



class ProviderTest(ProviderFixture):
    # --- certificates ----------------------------------------------------------------------------

    def test_req_x509_for_each_key_type_verifies_with_the_default_provider(self):
        cases = [("tls-ec", ()), ("tls-p384", ("-sha384",)), ("tls-rsa", ()),
                 ("tls-rsa", ("-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest")),
                 ("tls-rsa", ("-sha512", "-sigopt", "rsa_padding_mode:pss"))]
        for i, (keyset, sigopts) in enumerate(cases):
            with self.subTest(keyset=keyset, sigopts=sigopts):
                cert = self.self_signed(keyset, f"req{i}", *sigopts)
                # -check_ss_sig: a self-signed trust anchor's own signature is otherwise never checked.
                verified = self.openssl("verify", "-check_ss_sig", "-CAfile", cert, cert, provider=False)
                self.assertIn(b": OK", verified.stdout)
                # The certificate holds the daemon's public key, as /v1/keys gives it.
                pub = self.openssl("x509", "-in", cert, "-noout", "-pubkey", provider=False).stdout.decode()
                self.assertEqual(pub, Path(self.path(f"{keyset}.pub.pem")).read_text())
                text = self.openssl("x509", "-in", cert, "-noout", "-text", provider=False).stdout.decode()
                if "rsa_padding_mode:pss" in sigopts:
                    self.assertIn("rsassaPss", text)
                # Fails because one bit of the signature was flipped.
                der = bytearray(self.openssl("x509", "-in", cert, "-outform", "DER", provider=False).stdout)
                der[-5] ^= 0x01
                Path(self.path("tampered.der")).write_bytes(der)
                self.openssl("x509", "-inform", "DER", "-in", self.path("tampered.der"), "-out",
                             self.path("tampered.pem"), provider=False)
                refused = self.openssl("verify", "-check_ss_sig", "-CAfile", self.path("tampered.pem"),
                                       self.path("tampered.pem"), provider=False, check=False)
                self.assertNotEqual(refused.returncode, 0)

    def test_openssl_ca_signs_a_csr_with_a_token_key(self):
        ca_cert = self.self_signed("tls-rsa", "ca", "-addext", "basicConstraints=critical,CA:TRUE",
                                   "-addext", "keyUsage=critical,keyCertSign,cRLSign", san="DNS:ca.test")
        ca_dir = self.dir / "ca"
        (ca_dir / "new").mkdir(parents=True)
        (ca_dir / "index.txt").write_text("")
        (ca_dir / "serial").write_text("1000\n")
        (self.dir / "ca.cnf").write_text(f"""
[ca]
default_ca = test_ca
[test_ca]
dir = {ca_dir}
database = $dir/index.txt
new_certs_dir = $dir/new
serial = $dir/serial
certificate = {ca_cert}
private_key = hsmsignd:keyset=tls-rsa
default_md = sha256
default_days = 1
policy = anything
copy_extensions = copy
[anything]
commonName = supplied
""")
        # The leaf's own key is an ordinary software key: only the CA's signature comes from the token.
        self.openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                     "-keyout", self.path("leaf.key"), "-subj", "/CN=leaf.test", "-out", self.path("leaf.csr"),
                     provider=False)
        self.openssl("ca", "-batch", "-config", self.path("ca.cnf"), "-in", self.path("leaf.csr"),
                     "-out", self.path("leaf.pem"))
        verified = self.openssl("verify", "-CAfile", ca_cert, self.path("leaf.pem"), provider=False)
        self.assertIn(b": OK", verified.stdout)

    # --- digests and raw signatures --------------------------------------------------------------

    def test_dgst_sign_verifies_against_the_jwks_and_the_published_keys(self):
        data = self.dir / "data.bin"
        data.write_bytes(os.urandom(4096))
        # The JWT keyset's public key from the JWK Set, turned into PEM by jwcrypto.
        from jwcrypto import jwk
        jwks = jwk.JWKSet.from_json(self.daemon.get("/.well-known/jwks.json").body.decode())
        jwks_key = jwks.get_key(self.keys["default"]["kid"])
        (self.dir / "jwks.pub.pem").write_bytes(jwks_key.export_to_pem())
        cases = [("default", "-sha256", "jwks.pub.pem", ()), ("tls-ec", "-sha384", "tls-ec.pub.pem", ()),
                 ("tls-p384", "-sha512", "tls-p384.pub.pem", ()), ("tls-rsa", "-sha256", "tls-rsa.pub.pem", ()),
                 ("tls-rsa", "-sha384", "tls-rsa.pub.pem",
                  ("-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"))]
        for keyset, md, pub, sigopts in cases:
            with self.subTest(keyset=keyset, md=md, sigopts=sigopts):
                self.openssl("dgst", md, "-sign", f"hsmsignd:keyset={keyset}", *sigopts, "-out",
                             self.path("sig.bin"), str(data))
                ok = self.openssl("dgst", md, "-verify", self.path(pub), *sigopts, "-signature",
                                  self.path("sig.bin"), str(data), provider=False)
                self.assertIn(b"Verified OK", ok.stdout)
                # Fails because the data is not what was signed.
                data.write_bytes(data.read_bytes() + b"x")
                bad = self.openssl("dgst", md, "-verify", self.path(pub), *sigopts, "-signature",
                                   self.path("sig.bin"), str(data), provider=False, check=False)
                self.assertIn(b"Verification failure", bad.stdout)

    def test_pkeyutl_signs_a_digest(self):
        import hashlib
        cases = [("tls-ec", hashlib.sha256, ()), ("tls-p384", hashlib.sha384, ()),
                 ("tls-rsa", hashlib.sha256, ("-pkeyopt", "digest:sha256")),
                 ("tls-rsa", hashlib.sha512, ("-pkeyopt", "digest:sha512", "-pkeyopt", "rsa_padding_mode:pss",
                                              "-pkeyopt", "rsa_pss_saltlen:digest"))]
        for keyset, hash_fn, opts in cases:
            with self.subTest(keyset=keyset, opts=opts):
                digest = hash_fn(os.urandom(64)).digest()
                Path(self.path("digest.bin")).write_bytes(digest)
                self.openssl("pkeyutl", "-sign", "-inkey", f"hsmsignd:keyset={keyset}", *opts,
                             "-in", self.path("digest.bin"), "-out", self.path("pk.sig"))
                ok = self.openssl("pkeyutl", "-verify", "-pubin", "-inkey", self.path(f"{keyset}.pub.pem"), *opts,
                                  "-in", self.path("digest.bin"), "-sigfile", self.path("pk.sig"), provider=False)
                self.assertIn(b"Signature Verified Successfully", ok.stdout)

    def test_the_audit_log_names_every_signature_and_its_peer(self):
        before = len(self.audit_signatures())
        data = self.dir / "audit.bin"
        data.write_bytes(b"audited")
        self.openssl("dgst", "-sha384", "-sign", "hsmsignd:keyset=tls-rsa", "-sigopt", "rsa_padding_mode:pss",
                     "-out", self.path("a.sig"), str(data))
        lines = self.audit_signatures()[before:]
        self.assertEqual(len(lines), 1, lines)
        line = lines[0]
        self.assertEqual((line["kid"], line["keyset"], line["hash"], line["padding"], line["uid"]),
                         (self.keys["tls-rsa"]["kid"], "tls-rsa", "SHA-384", "pss", 0))

    # --- keys the provider refuses ----------------------------------------------------------------

    def test_unknown_keys_and_a_stopped_daemon_fail_with_a_clear_error(self):
        missing = self.openssl("pkey", "-in", "hsmsignd:kid=no-such-kid", "-pubout", check=False)
        self.assertNotEqual(missing.returncode, 0)
        self.assertIn(b"no key with kid no-such-kid", missing.stderr)
        bad_uri = self.openssl("pkey", "-in", "hsmsignd:label=x", "-pubout", check=False)
        self.assertIn(b"not an hsmsignd key URI", bad_uri.stderr)
        env = dict(self.env, HSMSIGND_SOCKET=str(self.dir / "no.sock"))
        out = subprocess.run(["openssl", "pkey", *PROVIDER, "-in", "hsmsignd:keyset=tls-ec", "-pubout"], env=env,
                             capture_output=True, timeout=30)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn(b"no.sock", out.stderr)

    # --- many processes, threads, fork ------------------------------------------------------------

    def test_16_processes_of_100_signatures_forked_after_loading(self):
        tool = binary("HSMSIGND_PROVIDER_CLIENT", "build/tests/provider/provider_client")
        for uri, extra in ((f"hsmsignd:kid={self.keys['tls-ec']['kid']}", ()),
                           ("hsmsignd:keyset=tls-rsa", ("sha384", "pss"))):
            with self.subTest(uri=uri):
                out = subprocess.run([tool, uri, "16", "1", "100", *extra], env=self.env, capture_output=True,
                                     text=True, timeout=240)
                self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
                self.assertIn("signatures 1600, failed processes 0, parent ok", out.stdout)
        threads = subprocess.run([tool, "hsmsignd:keyset=tls-p384", "1", "8", "25", "sha384"], env=self.env,
                                 capture_output=True, text=True, timeout=120)
        self.assertEqual(threads.returncode, 0, threads.stdout + threads.stderr)
        pids = {r["pid"] for r in self.audit_signatures()}
        self.assertGreaterEqual(len(pids), 16, "every forked child signed on its own connection")


class TlsServerTest(ProviderFixture):
    """s_server and nginx on loopback with token keys; s_client and curl complete TLS 1.2 and 1.3."""

    def handshake(self, port, cert, *args):
        """s_client with the default provider only: verifies the chain and prints the peer's signature."""
        out = self.openssl("s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost", "-CAfile", cert,
                           "-verify_return_error", "-brief", *args, provider=False, check=False, input=b"",
                           timeout=30)
        return out.returncode, out.stderr.decode(errors="replace") + out.stdout.decode(errors="replace")

    def curl(self, port, cert, *args):
        return subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", cert, *args,
                               f"https://localhost:{port}/"], env=self.plain_env, capture_output=True, text=True,
                              timeout=30)

    def test_s_server_handshakes_sign_in_the_token(self):
        for keyset, sigalgs, signature_type in (("tls-ec", "ECDSA+SHA256", "ECDSA"),
                                                ("tls-rsa", "RSA+SHA256", "RSA"),
                                                ("tls-rsa", "rsa_pss_rsae_sha256", "RSA-PSS")):
            with self.subTest(keyset=keyset, sigalgs=sigalgs):
                cert = self.self_signed(keyset, f"s_server-{keyset}")
                port = free_port()
                server = subprocess.Popen(
                    ["openssl", "s_server", *PROVIDER, "-accept", f"127.0.0.1:{port}", "-cert", cert,
                     "-key", f"hsmsignd:kid={self.keys[keyset]['kid']}", "-www", "-quiet"],
                    env=self.env, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL)
                try:
                    wait_for_port(port, server)
                    before = len(self.audit_signatures())
                    status, text = self.handshake(port, cert, "-tls1_2", "-sigalgs", sigalgs)
                    self.assertEqual(status, 0, text)
                    self.assertIn("Verification: OK", text)
                    self.assertIn(f"Signature type: {signature_type}", text)
                    # A NIST curve for the key exchange: the server's own ECDHE key comes from default.
                    status, text = self.handshake(port, cert, "-tls1_3", "-groups", "P-256")
                    self.assertEqual(status, 0, text)
                    self.assertIn("Protocol version: TLSv1.3", text)
                    curl = self.curl(port, cert, "--tlsv1.3")
                    self.assertEqual(curl.returncode, 0, curl.stderr)
                    signed = self.audit_signatures()[before:]
                    self.assertEqual(len(signed), 3, "one token signature per handshake")
                    self.assertEqual({s["kid"] for s in signed}, {self.keys[keyset]["kid"]})
                    self.assertEqual({s["pid"] for s in signed}, {server.pid})
                finally:
                    stop_process(server)

    def start_nginx(self, cert, key_file, port, conf_name="nginx"):
        root = self.dir / conf_name
        root.mkdir(exist_ok=True)
        os.chmod(root, 0o750)
        (root / "openssl.cnf").write_text(f"""
openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
default = default_sect
hsmsignd = hsmsignd_sect
[default_sect]
activate = 1
[hsmsignd_sect]
module = {provider_module()}
socket = {self.daemon.socket_path}
activate = 1
""")
        (root / "nginx.conf").write_text(f"""
daemon off;
master_process on;
worker_processes 2;
user nobody root;
pid {root}/nginx.pid;
error_log {root}/error.log info;
events {{ worker_connections 64; }}
http {{
  access_log {root}/access.log;
  client_body_temp_path {root}/body;
  proxy_temp_path {root}/proxy;
  fastcgi_temp_path {root}/fastcgi;
  uwsgi_temp_path {root}/uwsgi;
  scgi_temp_path {root}/scgi;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key_file};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    location / {{ return 200 "hello from nginx\\n"; }}
  }}
}}
""")
        env = dict(self.plain_env, OPENSSL_CONF=str(root / "openssl.cnf"))
        process = subprocess.Popen([NGINX, "-p", str(root), "-c", str(root / "nginx.conf"), "-e",
                                    str(root / "error.log")], env=env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(port, process)
        except AssertionError:
            stop_process(process)
            raise AssertionError(f"nginx did not start:\n{(root / 'error.log').read_text(errors='replace')}")
        return process

    def test_nginx_with_a_pem_wrapped_uri_serves_tls_12_and_13(self):
        for keyset, expected in (("tls-ec", "ECDSA"), ("tls-rsa", "RSA-PSS")):
            with self.subTest(keyset=keyset):
                cert = self.self_signed(keyset, f"nginx-{keyset}")
                key_file = self.dir / f"nginx-{keyset}.key"
                key_file.write_text(pem_uri(f"hsmsignd:keyset={keyset}"))
                port = free_port()
                nginx = self.start_nginx(cert, key_file, port, f"nginx-{keyset}")
                try:
                    before = len(self.audit_signatures())
                    for version in ("--tlsv1.2", "--tlsv1.3"):
                        tls_max = ("--tls-max", "1.2") if version == "--tlsv1.2" else ()
                        out = self.curl(port, cert, version, *tls_max)
                        self.assertEqual((out.returncode, out.stdout), (0, "hello from nginx\n"), out.stderr)
                    status, text = self.handshake(port, cert, "-tls1_3")
                    self.assertEqual(status, 0, text)
                    self.assertIn(f"Signature type: {expected}", text)
                    signed = self.audit_signatures()[before:]
                    self.assertEqual(len(signed), 3, signed)
                    # The handshakes were signed by the workers (nobody), not by the master (root).
                    self.assertEqual({s["uid"] for s in signed}, {WORKER_UID})
                finally:
                    stop_process(nginx)

    def test_nginx_survives_a_daemon_restart(self):
        cert = self.self_signed("tls-ec", "nginx-restart")
        key_file = self.dir / "nginx-restart.key"
        key_file.write_text(pem_uri(f"hsmsignd:kid={self.keys['tls-ec']['kid']}"))
        port = free_port()
        nginx = self.start_nginx(cert, key_file, port, "nginx-restart")
        try:
            self.assertEqual(self.curl(port, cert).returncode, 0)
            self.daemon.stop()
            try:
                # While the daemon is down, handshakes fail at once and cleanly; nginx keeps running.
                started = time.monotonic()
                down = self.curl(port, cert)
                self.assertNotEqual(down.returncode, 0)
                self.assertLess(time.monotonic() - started, 9)
                self.assertIsNone(nginx.poll())
            finally:
                self.daemon.start()
            again = self.curl(port, cert)
            self.assertEqual((again.returncode, again.stdout), (0, "hello from nginx\n"), again.stderr)
        finally:
            stop_process(nginx)

if __name__ == "__main__":
    unittest.main()
