"""Deployment: the systemd units (sandbox score, verify), socket activation, the notify protocol with its
watchdog, the PIN as a systemd credential, the refusal to run as root, and `cmake --install`."""
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

from harness import Daemon, hsmsignd_bin

SOURCE = Path(__file__).resolve().parents[2]
UNITS = SOURCE / "systemd"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
SOCKET_ACTIVATE = shutil.which("systemd-socket-activate")


def exposure(output):
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", output)
    assert match, output
    return float(match.group(1))


class UnitFilesTest(unittest.TestCase):
    def setUp(self):
        self.assertTrue(SYSTEMD_ANALYZE, "systemd-analyze (package systemd) is needed")

    def test_sandbox_scores_1_5_or_better(self):
        out = subprocess.run([SYSTEMD_ANALYZE, "security", "--offline=yes", str(UNITS / "hsmsignd.service")],
                             capture_output=True, text=True, timeout=60)
        self.assertLessEqual(exposure(out.stdout), 1.5, out.stdout)

    def test_units_verify_clean_once_installed(self):
        # verify checks that ExecStart's binary exists, so the installed units are verified with that one
        # path pointed into the scratch root; every other line is checked as installed.
        with tempfile.TemporaryDirectory() as root:
            install(root)
            installed = Path(root, "usr/lib/systemd/system")
            checked = Path(root, "check")
            checked.mkdir()
            for unit in ("hsmsignd.service", "hsmsignd.socket", "hsmsignd-jwks.socket"):
                text = (installed / unit).read_text().replace("/usr/sbin/hsmsignd", f"{root}/usr/sbin/hsmsignd")
                (checked / unit).write_text(text)
            out = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", *map(str, checked.iterdir())],
                                 capture_output=True, text=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
            self.assertEqual(out.stderr.strip(), "", out.stderr)

    def test_drop_ins_open_only_what_their_hsm_needs(self):
        # The score with each documented drop-in, installed where systemd would read it.
        for dropin, worst in (("usb-hsm.conf", 3.0), ("network-hsm.conf", 3.0)):
            with self.subTest(dropin=dropin), tempfile.TemporaryDirectory() as root:
                units = Path(root, "etc/systemd/system")
                (units / "hsmsignd.service.d").mkdir(parents=True)
                shutil.copy(UNITS / "hsmsignd.service", units)
                shutil.copy(UNITS / "dropins" / dropin, units / "hsmsignd.service.d")
                out = subprocess.run([SYSTEMD_ANALYZE, "security", "--offline=yes", f"--root={root}",
                                      "hsmsignd.service"], capture_output=True, text=True, timeout=60)
                base = subprocess.run([SYSTEMD_ANALYZE, "security", "--offline=yes",
                                       str(UNITS / "hsmsignd.service")], capture_output=True, text=True)
                self.assertGreater(exposure(out.stdout), exposure(base.stdout), "the drop-in was not applied")
                self.assertLessEqual(exposure(out.stdout), worst, out.stdout)


def install(root):
    build = os.environ.get("HSMSIGND_BUILD_DIR")
    assert build, "HSMSIGND_BUILD_DIR (set by CTest) names the build to install"
    out = subprocess.run(["cmake", "--install", build, "--prefix", "/usr"], env=dict(os.environ, DESTDIR=root),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


class InstallTest(unittest.TestCase):
    def test_install_puts_everything_in_place(self):
        with tempfile.TemporaryDirectory() as root:
            install(root)
            r = Path(root)
            for path in ("usr/sbin/hsmsignd", "usr/bin/hsmsignctl", "usr/lib/systemd/system/hsmsignd.service",
                         "usr/lib/systemd/system/hsmsignd.socket", "usr/lib/systemd/system/hsmsignd-jwks.socket",
                         "usr/lib/sysusers.d/hsmsignd.conf", "usr/lib/tmpfiles.d/hsmsignd.conf",
                         "usr/share/doc/hsmsignd/README.md", "usr/share/doc/hsmsignd/operator.md",
                         "usr/share/doc/hsmsignd/examples/hsmsignd.toml",
                         "usr/share/doc/hsmsignd/examples/systemd/usb-hsm.conf", "etc/hsmsignd/hsmsignd.toml",
                         "usr/share/doc/hsmsignd/openssl.md", "usr/include/hsmsignd/client.h",
                         "usr/lib/x86_64-linux-gnu/libhsmsignd_client.a"):
                self.assertTrue((r / path).exists(), path)
            # The provider goes where OpenSSL looks for modules, whatever the prefix.
            modules = subprocess.run(["pkg-config", "--variable=modulesdir", "libcrypto"], capture_output=True,
                                     text=True, check=True).stdout.strip()
            self.assertTrue((r / modules.lstrip("/") / "hsmsignd.so").exists(), modules)
            config = r / "etc/hsmsignd/hsmsignd.toml"
            self.assertEqual(stat.S_IMODE(config.stat().st_mode) & 0o077 & ~0o040, 0, oct(config.stat().st_mode))
            # The installed configuration and the units agree on the addresses systemd binds.
            text = config.read_text()
            self.assertIn('socket       = "/run/hsmsignd/sign.sock"', text)
            self.assertIn('listen  = "127.0.0.1:8080"', text)
            self.assertIn("ListenStream=/run/hsmsignd/sign.sock", (UNITS / "hsmsignd.socket").read_text())
            self.assertIn("ListenStream=127.0.0.1:8080", (UNITS / "hsmsignd-jwks.socket").read_text())
            # An upgrade keeps the operator's configuration.
            config.write_text("# edited by the operator\n")
            install(root)
            self.assertEqual(config.read_text(), "# edited by the operator\n")

    def test_sysusers_and_tmpfiles_make_the_user_and_folders(self):
        with tempfile.TemporaryDirectory() as root:
            install(root)
            etc = Path(root, "etc")
            for f in ("passwd", "group", "shadow", "gshadow"):
                (etc / f).touch()
            out = subprocess.run(["systemd-sysusers", f"--root={root}"], capture_output=True, text=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertRegex((etc / "passwd").read_text(), r"(?m)^hsmsignd:")
            self.assertRegex((etc / "group").read_text(), r"(?m)^hsmsignd-clients:")
            self.assertRegex((etc / "group").read_text(), r"(?m)^softhsm:.*hsmsignd")
            out = subprocess.run(["systemd-tmpfiles", "--create", f"--root={root}", "hsmsignd.conf"],
                                 capture_output=True, text=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stderr)
            for folder, mode in (("run/hsmsignd", 0o710), ("var/lib/hsmsignd", 0o700), ("var/log/hsmsignd", 0o700)):
                st = Path(root, folder).stat()
                self.assertEqual(stat.S_IMODE(st.st_mode), mode, folder)
                self.assertNotEqual(st.st_uid, 0, folder)


class NotifyListener:
    """The receiving end of sd_notify: what systemd would read from $NOTIFY_SOCKET."""

    def __init__(self, folder):
        self.path = str(Path(folder) / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []

    def wait_for(self, field, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(field in m for m in self.messages):
                return True
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                self.messages.append(self.sock.recv(4096).decode().split("\n"))
            except socket.timeout:
                break
        return any(field in m for m in self.messages)

    def count(self, field):
        return sum(field in m for m in self.messages)

    def close(self):
        self.sock.close()


class SystemdProtocolTest(unittest.TestCase):
    """The daemon as systemd starts it: credentials, notify and watchdog, sockets passed in."""

    def setUp(self):
        self.daemon = Daemon()
        self.addCleanup(self.daemon.cleanup)
        self.processes = []

    def tearDown(self):
        for p in self.processes:
            if p.poll() is None:
                p.kill()
                p.wait()

    def launch(self, command, env, stderr_name="stderr.log"):
        self.stderr_file = self.daemon.workdir / stderr_name
        with open(self.stderr_file, "wb") as err:
            p = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        self.processes.append(p)
        return p

    def write_config_without_pin_file(self):
        config = self.daemon.config
        config["token"] = {k: v for k, v in config["token"].items() if k != "pin_file"}
        self.daemon.write_config()
        credentials = self.daemon.workdir / "credentials"
        credentials.mkdir(mode=0o700)
        shutil.copy(self.daemon.workdir / "token" / "pin", credentials / "pin")
        return credentials

    def test_ready_after_login_watchdog_pings_and_pin_from_credentials(self):
        credentials = self.write_config_without_pin_file()
        notify = NotifyListener(self.daemon.workdir)
        self.addCleanup(notify.close)
        env = dict(self.daemon.token_env, NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="400000",
                   CREDENTIALS_DIRECTORY=str(credentials))
        p = self.launch([hsmsignd_bin(), "--config", str(self.daemon.config_path), "--allow-root"], env)
        self.assertTrue(notify.wait_for("READY=1", 30), (notify.messages, self.stderr_file.read_text()))
        # Ready means serving: the first request after READY=1 gets a token.
        self.assertEqual(self.daemon.post("/v1/jwt", {"sub": "u"}).status, 200)
        pings_before = notify.count("WATCHDOG=1")
        notify.wait_for("never", 1.0)
        self.assertGreaterEqual(notify.count("WATCHDOG=1") - pings_before, 3, notify.messages)
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=15), 0, self.stderr_file.read_text())
        self.assertTrue(notify.wait_for("STOPPING=1", 1), notify.messages)

    def test_not_ready_when_the_token_is_missing(self):
        self.daemon.config["token"]["label"] = "no-such-token"
        self.daemon.write_config()
        notify = NotifyListener(self.daemon.workdir)
        self.addCleanup(notify.close)
        p = self.launch([hsmsignd_bin(), "--config", str(self.daemon.config_path), "--allow-root"],
                        dict(self.daemon.token_env, NOTIFY_SOCKET=notify.path))
        self.assertEqual(p.wait(timeout=30), 1)
        notify.wait_for("READY=1", 0.2)
        self.assertEqual(notify.count("READY=1"), 0, notify.messages)
        self.assertIn("no-such-token", self.stderr_file.read_text())

    def socket_activated(self, *extra_listen):
        self.assertTrue(SOCKET_ACTIVATE, "systemd-socket-activate (package systemd) is needed")
        self.daemon.write_config()
        sock = self.daemon.socket_path
        listen = ["-l", str(sock), "-l", f"127.0.0.1:{self.daemon.port}", *extra_listen]
        env_args = [f"-E{k}={v}" for k, v in self.daemon.token_env.items() if k == "SOFTHSM2_CONF"]
        p = self.launch([SOCKET_ACTIVATE, *listen, *env_args, hsmsignd_bin(), "--config",
                         str(self.daemon.config_path), "--allow-root"], self.daemon.token_env)
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return p

    def test_adopts_the_sockets_systemd_passes(self):
        p = self.socket_activated()
        sock = self.daemon.socket_path
        before = os.stat(sock)
        # The first connection starts the daemon; it waits in the backlog until the daemon serves it.
        self.assertEqual(self.daemon.post("/v1/jwt", {"sub": "u"}, timeout=30).status, 200)
        self.assertIn("socket_activation=yes", self.stderr_file.read_text())
        self.assertEqual(self.daemon.public("GET", "/.well-known/jwks.json").status, 200)
        # The daemon served systemd's socket rather than binding its own: same inode, mode untouched.
        after = os.stat(sock)
        self.assertEqual((before.st_ino, before.st_mode), (after.st_ino, after.st_mode))
        os.kill(p.pid, signal.SIGTERM)
        self.assertEqual(p.wait(timeout=15), 0, self.stderr_file.read_text())

    def test_refuses_a_passed_socket_it_has_no_address_for(self):
        stray = self.daemon.workdir / "run" / "stray.sock"
        p = self.socket_activated("-l", str(stray))
        # systemd-socket-activate starts the daemon at the first connection.
        try:
            self.daemon.post("/healthz", None, timeout=30)
        except OSError:
            pass
        self.assertEqual(p.wait(timeout=30), 2)
        err = self.stderr_file.read_text()
        self.assertIn("stray.sock", err)
        self.assertIn("ListenStream", err)


class PrivilegeTest(unittest.TestCase):
    def test_refuses_root_unless_told(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to check the refusal of root")
        with Daemon() as daemon:
            daemon.stop()
            out = subprocess.run([hsmsignd_bin(), "--config", str(daemon.config_path)], env=daemon.token_env,
                                 capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 1)
            self.assertIn("refusing to run as root", out.stderr)
            self.assertIn("--allow-root", out.stderr)
            self.assertFalse(daemon.socket_path.exists())
            # --check changes nothing, so it may run as root.
            out = subprocess.run([hsmsignd_bin(), "--config", str(daemon.config_path), "--check"],
                                 env=daemon.token_env, capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 0, out.stderr)

    def test_serves_as_an_unprivileged_user(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to become another user")
        daemon = Daemon()
        self.addCleanup(daemon.cleanup)
        daemon.write_config()
        nobody = 65534
        for dirpath, dirnames, filenames in os.walk(daemon.workdir):
            for name in [dirpath, *(os.path.join(dirpath, f) for f in dirnames + filenames)]:
                os.chown(name, nobody, nobody)
        daemon.config["client"][0]["uids"] = [0, nobody]
        daemon.write_config()
        with open(daemon.workdir / "stderr.log", "wb") as err:
            p = subprocess.Popen(["setpriv", f"--reuid={nobody}", f"--regid={nobody}", "--clear-groups",
                                  hsmsignd_bin(), "--config", str(daemon.config_path)],
                                 env=daemon.token_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.monotonic() + 30
            while not daemon.socket_path.exists() and p.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.2)
            answer = daemon.post("/v1/jwt", {"sub": "u"})
            self.assertEqual(answer.status, 200, (answer, (daemon.workdir / "stderr.log").read_text()))
            # Its files belong to it and to nobody else.
            audit = daemon.workdir / "log" / "audit.jsonl"
            self.assertEqual(audit.stat().st_uid, nobody)
            self.assertEqual(stat.S_IMODE(audit.stat().st_mode) & 0o077, 0)
            status = Path(f"/proc/{p.pid}/status").read_text()
            self.assertRegex(status, r"(?m)^Uid:\s+65534\s+65534")
            # PR_SET_DUMPABLE 0 (no core dumps, no ptrace by the same user): the kernel then hands the
            # process's /proc files to root.
            self.assertEqual(os.stat(f"/proc/{p.pid}/environ").st_uid, 0)
        finally:
            p.send_signal(signal.SIGTERM)
            self.assertEqual(p.wait(timeout=15), 0)


if __name__ == "__main__":
    unittest.main()
