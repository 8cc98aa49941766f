"""Token factories for the token matrix (test_token_matrix.py): one class per PKCS#11 implementation, each
making a throw-away token in a folder of its own and running the helper processes it needs, every one
started here and stopped here by its pid.

    token = TPMToken(Path(tmp) / "token")   # nothing happens yet
    token.create()                           # makes the token, starts swtpm, dbus-daemon, tpm2-abrmd
    token.token_table()                      # the daemon's [token] table: module, label, pin_file, ...
    token.env()                              # os.environ + what the module needs (TPM2_PKCS11_TCTI, ...)
    token.stop()                             # SIGTERM (then SIGKILL) every helper, by pid; idempotent

harness.Daemon(token_factory=TPMToken) does all of that in the daemon's workdir (folder "token", so the
[token] pin_file is "token/pin" as for SoftHSM), and stops the helpers in cleanup().

Not a test module. Needs the Debian packages of scripts/install-deps.sh (softhsm2, libnss3-tools, swtpm,
swtpm-tools, tpm2-tools, tpm2-abrmd, libtss2-tcti-tabrmd0, dbus, libtpm2-pkcs11-1, libtpm2-pkcs11-tools,
p11-kit, p11-kit-modules); a missing one is a failure, never a skip.
"""
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE_ROOT = HERE.parent.parent
PIN = "e2e-throwaway-pin"     # the same worthless PIN as harness.PIN
TOKEN_LABEL = "hsmsignd-e2e"  # the same label as harness.TOKEN_LABEL
HELPER_START_TIMEOUT = 15.0
HELPER_STOP_TIMEOUT = 5.0

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
NSS_MODULE = "/usr/lib/x86_64-linux-gnu/libsoftokn3.so"
TPM_MODULE = "/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so"
P11KIT_CLIENT_MODULE = "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so"


class TokenError(AssertionError):
    pass


def need(program):
    path = shutil.which(program) or (program if os.access(program, os.X_OK) else None)
    if not path:
        raise TokenError(f"{program} is not installed (scripts/install-deps.sh installs it)")
    return path


def run(args, env=None, timeout=60, what=None):
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise TokenError(f"{what or args[0]} failed ({out.returncode}): {' '.join(map(str, args))}\n"
                         f"{out.stdout}{out.stderr}")
    return out


def wait_until(predicate, what, timeout=HELPER_START_TIMEOUT, process=None, log=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            text = Path(log).read_text(errors="replace") if log and Path(log).exists() else ""
            raise TokenError(f"{what}: the process exited with {process.returncode}\n{text}")
        if predicate():
            return
        time.sleep(0.05)
    text = Path(log).read_text(errors="replace") if log and Path(log).exists() else ""
    raise TokenError(f"timed out after {timeout}s waiting for {what}\n{text}")


class Helper:
    """A helper process of a token: started in its own session with its output in a log file, stopped by pid."""

    def __init__(self, name, args, env, log):
        self.name = name
        self.log = Path(log)
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                            start_new_session=True)
        self.pid = self.process.pid

    def alive(self):
        return self.process.poll() is None

    def stop(self):
        """SIGTERM to the pid, SIGKILL after a bound; the exit status (None if it was gone already)."""
        if self.process.poll() is not None:
            return self.process.returncode
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            return self.process.wait(timeout=HELPER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            return self.process.wait()

    def __repr__(self):
        return f"<{self.name} pid {self.pid}{'' if self.alive() else ' exited'}>"


class TokenFactory:
    """The interface every kind implements. Class attributes say what the kind can do:

    kind: short name ("softhsm", "nss", "tpm", "p11kit"); module: the PKCS#11 module the daemon loads;
    algorithms: the JWS algorithms its keys can sign; unsupported: algorithms a daemon must refuse at start;
    shareable: whether a second process (libp11_probe) sees the daemon's keys while the daemon runs;
    rsa_bits: the RSA size to configure; init_args: CK_C_INITIALIZE_ARGS.pReserved, or None;
    require_local: False when the module never sets CKA_LOCAL (the operator's choice in [token]);
    probe_also_accept: return values the libp11 probe accepts besides CKR_ATTRIBUTE_SENSITIVE, with why."""

    kind = None
    module = None
    algorithms = ()
    unsupported = ()
    shareable = True
    rsa_bits = 2048
    require_local = True
    probe_also_accept = {}

    def __init__(self, root, label=TOKEN_LABEL, pin=PIN):
        self.root = Path(root)
        self.label = label
        self.pin = pin
        self.helpers = []
        self.created = False
        self.setup_log = []  # the commands that made the token, for the test's log and the report

    # --- what the daemon is given ---
    @property
    def pin_file(self):
        return self.root / "pin"

    @property
    def init_args(self):
        return None

    def token_table(self, pin_file="token/pin"):
        """The daemon's [token] table. pin_file as the daemon's config names it (relative to its file)."""
        table = {"module": self.module, "label": self.label, "pin_file": pin_file}
        if self.init_args is not None:
            table["init_args"] = self.init_args
        if not self.require_local:
            table["require_local"] = False
        return table

    def extra_env(self):
        return {}

    def env(self):
        return dict(os.environ, **self.extra_env())

    def description(self):
        return f"{self.kind} ({self.module})"

    # --- lifecycle ---
    def create(self):
        """Makes the token and starts its helpers; on any failure, stops what was started and raises."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        self.pin_file.write_text(self.pin + "\n")
        os.chmod(self.pin_file, 0o600)
        try:
            self._create()
        except BaseException:
            self.stop()
            raise
        self.created = True
        return self

    def _create(self):
        raise NotImplementedError

    def start_helper(self, name, args, env=None):
        helper = Helper(name, args, env or self.env(), self.root / f"{name}.log")
        self.helpers.append(helper)
        self.setup_log.append(" ".join(str(a) for a in args) + " &")
        return helper

    def run(self, args, env=None, what=None, timeout=120):
        self.setup_log.append(" ".join(str(a) for a in args))
        return run(args, env=env or self.env(), what=what, timeout=timeout)

    def stop(self):
        """Stops every helper by pid, last started first. Safe to call twice, and after a failed create()."""
        statuses = []
        for helper in reversed(self.helpers):
            statuses.append((helper.name, helper.pid, helper.stop()))
        self.helpers = []
        return statuses

    def helper_pids(self):
        return [h.pid for h in self.helpers]

    def __enter__(self):
        return self.create()

    def __exit__(self, *exc):
        self.stop()


class SoftHSMToken(TokenFactory):
    """SoftHSM2, as every other e2e test uses it: softhsm-config/make-token.sh, SOFTHSM2_CONF."""

    kind = "softhsm"
    module = SOFTHSM_MODULE
    algorithms = ("ES256", "ES384", "RS256", "PS256", "EdDSA")

    def _create(self):
        need("softhsm2-util")
        script = os.environ.get("HSMSIGND_MAKE_TOKEN") or str(SOURCE_ROOT / "softhsm-config" / "make-token.sh")
        out = self.run([script, str(self.root), self.label], env=dict(os.environ, HSMSIGND_PIN=self.pin),
                       what="make-token.sh")
        self.softhsm_conf = out.stdout.strip().rpartition("SOFTHSM2_CONF=")[2]

    def extra_env(self):
        return {"SOFTHSM2_CONF": str(self.root / "softhsm2.conf")}


class NSSToken(TokenFactory):
    """NSS softoken (libsoftokn3.so): a key database made by certutil -N, opened through pReserved.

    Quirks (issue 17): C_Initialize needs pReserved (else CKR_ARGUMENTS_BAD), so the daemon needs
    [token] init_args; generated keys never have CKA_LOCAL, so [token] require_local = false; no Ed25519.
    The token's label is dbTokenDescription. NSS_MAX_MP_PBE_ITERATION_COUNT keeps the key database's
    password hashing cheap on this throw-away token."""

    kind = "nss"
    module = NSS_MODULE
    algorithms = ("ES256", "ES384", "RS256", "PS256")
    unsupported = ("EdDSA",)
    require_local = False

    @property
    def db_dir(self):
        return self.root / "nssdb"

    @property
    def init_args(self):
        return (f"configdir='sql:{self.db_dir}' certPrefix='' keyPrefix='' secmod='secmod.db' flags= "
                f"dbTokenDescription='{self.label}'")

    def extra_env(self):
        return {"NSS_MAX_MP_PBE_ITERATION_COUNT": "10"}

    def _create(self):
        if not os.path.exists(self.module):
            raise TokenError(f"{self.module} is missing (libnss3)")
        self.db_dir.mkdir(mode=0o700, exist_ok=True)
        self.run([need("certutil"), "-N", "-d", f"sql:{self.db_dir}", "-f", str(self.pin_file)], what="certutil -N")


class TPMToken(TokenFactory):
    """A TPM 2.0: swtpm on a Unix socket, tpm2-abrmd in front of it on a private dbus-daemon, tpm2-pkcs11's
    store in the folder (tpm2_ptool init + addtoken). Going straight to swtpm fails (3 transient slots,
    tpm2-pkcs11 #758), hence the broker.

    Quirks (issue 17): pReserved must be NULL; the public template must not ask for CKA_VERIFY/CKA_ENCRYPT
    ("attr mismatch 0x10a"); RSA key generation takes seconds; a process sees the objects that existed at
    its C_Initialize; about 50 key pairs per process at --max-transients=100; no Ed25519. CKA_VALUE of a
    sensitive EC private key is answered CKR_ATTRIBUTE_TYPE_INVALID (the module keeps only the TPM's
    encrypted blob), not CKR_ATTRIBUTE_SENSITIVE."""

    kind = "tpm"
    module = TPM_MODULE
    algorithms = ("ES256", "ES384", "RS256", "PS256")
    unsupported = ("EdDSA",)
    shareable = False  # another process sees only the keys that existed at its C_Initialize
    probe_also_accept = {"CKR_ATTRIBUTE_TYPE_INVALID": "tpm2-pkcs11 keeps no CKA_VALUE of a TPM-generated "
                                                       "private key, only the TPM's encrypted blob"}
    SO_PIN = "e2e-throwaway-so-pin"
    TCTI = "tabrmd:bus_type=session"

    @property
    def bus_socket(self):
        return self.root / "bus"

    @property
    def swtpm_socket(self):
        return self.root / "swtpm.sock"

    @property
    def store(self):
        return self.root / "store"

    def extra_env(self):
        return {"DBUS_SESSION_BUS_ADDRESS": f"unix:path={self.bus_socket}", "TPM2_PKCS11_TCTI": self.TCTI,
                "TPM2TOOLS_TCTI": self.TCTI, "TPM2_PKCS11_STORE": str(self.store),
                "TPM2_PKCS11_LOG_LEVEL": "0"}

    def _create(self):
        if not os.path.exists(self.module):
            raise TokenError(f"{self.module} is missing (libtpm2-pkcs11-1)")
        tabrmd = [p for p in ("/usr/lib/x86_64-linux-gnu/libtss2-tcti-tabrmd.so.0",) if os.path.exists(p)]
        if not tabrmd:
            raise TokenError("libtss2-tcti-tabrmd.so.0 is missing: install libtss2-tcti-tabrmd0 (tpm2-abrmd does "
                             "not pull it in, and without it nothing reaches the broker)")
        (self.root / "tpmstate").mkdir(mode=0o700, exist_ok=True)
        self.store.mkdir(mode=0o700, exist_ok=True)
        # 1. The TPM: a fresh state, started and cleared by swtpm itself; control socket at <path>.ctrl, where
        #    the swtpm TCTI looks for it.
        swtpm = self.start_helper("swtpm", [
            need("swtpm"), "socket", "--tpm2", "--tpmstate", f"dir={self.root / 'tpmstate'}",
            "--server", f"type=unixio,path={self.swtpm_socket}",
            "--ctrl", f"type=unixio,path={self.swtpm_socket}.ctrl",
            "--flags", "not-need-init,startup-clear"])
        wait_until(lambda: self.swtpm_socket.exists() and Path(f"{self.swtpm_socket}.ctrl").exists(),
                   "swtpm's sockets", process=swtpm.process, log=swtpm.log)
        # 2. A private session bus, for the broker's name (no system bus, no system service).
        config = self.root / "bus.conf"
        config.write_text(
            '<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"\n'
            ' "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">\n'
            f'<busconfig><type>session</type><listen>unix:path={self.bus_socket}</listen><auth>EXTERNAL</auth>\n'
            '<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/>'
            '<allow own="*"/></policy></busconfig>\n')
        bus = self.start_helper("dbus-daemon", [need("dbus-daemon"), f"--config-file={config}", "--nofork",
                                                "--nopidfile"])
        wait_until(self.bus_socket.exists, "the private dbus-daemon's socket", process=bus.process, log=bus.log)
        # 3. The broker, on that bus, in front of swtpm.
        root_flag = ["--allow-root"] if os.geteuid() == 0 else []
        abrmd = self.start_helper("tpm2-abrmd", [need("tpm2-abrmd"), "--session", *root_flag, "--flush-all",
                                                 "--max-transients=100", f"--tcti=swtpm:path={self.swtpm_socket}"])

        def broker_answers():
            return subprocess.run([need("tpm2_getcap"), "-T", self.TCTI, "properties-fixed"], env=self.env(),
                                  capture_output=True, timeout=10).returncode == 0
        wait_until(broker_answers, "tpm2-abrmd on the private bus", process=abrmd.process, log=abrmd.log)
        # 4. The token: a primary key in the store, and a token under it.
        ptool = need("tpm2_ptool")
        self.run([ptool, "init", "--path", str(self.store)], what="tpm2_ptool init")
        self.run([ptool, "addtoken", "--pid=1", f"--label={self.label}", f"--sopin={self.SO_PIN}",
                  f"--userpin={self.pin}", "--path", str(self.store)], what="tpm2_ptool addtoken")


class P11KitRemoteToken(TokenFactory):
    """p11-kit remote: `p11-kit server` exports a SoftHSM token on a Unix socket in the folder; the daemon
    loads p11-kit-client.so with P11_KIT_SERVER_ADDRESS (the shape of a network HSM). The daemon's
    environment has no SOFTHSM2_CONF: it reaches the token only through the socket.

    Quirks (issue 17): the client drops CKM_SHA256_RSA_PKCS_PSS, EdDSA and CKM_ECDSA_SHA256 (0.24.1); a
    lost connection raises SIGPIPE in the client process; afterwards calls fail with CKR_DEVICE_ERROR
    until C_Finalize + C_Initialize."""

    kind = "p11kit"
    module = P11KIT_CLIENT_MODULE
    algorithms = ("ES256", "ES384", "RS256", "PS256")
    unsupported = ("EdDSA",)

    @property
    def socket(self):
        return self.root / "p11-kit.sock"

    @property
    def softhsm_dir(self):
        return self.root / "softhsm"

    def softhsm_env(self):
        return dict(os.environ, SOFTHSM2_CONF=str(self.softhsm_dir / "softhsm2.conf"))

    def env(self):
        env = {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"}
        env["P11_KIT_SERVER_ADDRESS"] = f"unix:path={self.socket}"
        return env

    def extra_env(self):
        return {"P11_KIT_SERVER_ADDRESS": f"unix:path={self.socket}"}

    def _create(self):
        if not os.path.exists(self.module):
            raise TokenError(f"{self.module} is missing (p11-kit-modules)")
        backing = SoftHSMToken(self.softhsm_dir, self.label, self.pin)
        backing.create()
        self.setup_log += backing.setup_log
        server = self.start_helper("p11-kit-server", [
            need("p11-kit"), "server", "--foreground", "--provider", SOFTHSM_MODULE, "--name", str(self.socket),
            f"pkcs11:token={self.label}"], env=self.softhsm_env())
        wait_until(self.socket.exists, "p11-kit server's socket", process=server.process, log=server.log)


KINDS = {cls.kind: cls for cls in (SoftHSMToken, NSSToken, TPMToken, P11KitRemoteToken)}


class SharedP11KitServer:
    """ONE p11-kit server (in front of one SoftHSM token) shared by several daemons: the shape of several hosts
    on one network HSM (test_several_hosts.py).

        shared = SharedP11KitServer(Path(tmp) / "hsm").create()   # the token and `p11-kit server`, once
        Daemon(token_factory=shared.client_factory)                # every daemon a client of that server
        shared.stop()                                              # the server, by pid, when all are done

    Each daemon's factory (a P11KitClient) only writes the PIN file in its own workdir and gives the shared
    socket's [token] table and environment; its stop() leaves the server alone, so that killing or cleaning up
    one daemon never takes the token away from the others."""

    def __init__(self, root, label=TOKEN_LABEL, pin=PIN):
        self.token = P11KitRemoteToken(root, label, pin)

    @property
    def socket(self):
        return self.token.socket

    @property
    def server_pid(self):
        return self.token.helper_pids()[0] if self.token.helpers else None

    def create(self):
        self.token.create()
        return self

    def stop(self):
        return self.token.stop()

    def client_factory(self, root, label=TOKEN_LABEL, pin=PIN):
        """What harness.Daemon(token_factory=...) calls: a client of this server in the daemon's folder."""
        if label != self.token.label or pin != self.token.pin:
            raise TokenError("a client of the shared p11-kit server must use its token's label and PIN")
        return P11KitClient(self, root)


class P11KitClient(TokenFactory):
    """One daemon's view of a SharedP11KitServer: a PIN file of its own, the server's socket, no helpers."""

    kind = "p11kit"
    module = P11KIT_CLIENT_MODULE
    algorithms = P11KitRemoteToken.algorithms
    unsupported = P11KitRemoteToken.unsupported

    def __init__(self, shared, root):
        super().__init__(root, shared.token.label, shared.token.pin)
        self.shared = shared

    def _create(self):
        if not self.shared.token.created or not self.shared.socket.exists():
            raise TokenError("the shared p11-kit server is not running: create() it first")

    def env(self):
        return self.shared.token.env()

    def extra_env(self):
        return self.shared.token.extra_env()
