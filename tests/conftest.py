"""Shared fixtures: the corpus, a private PulseAudio server, the CLI in a subprocess.

Under CI=true a missing corpus, PulseAudio or mosquitto fails the test; elsewhere it skips with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .servers import wait_until_listening

ROOT = Path(__file__).resolve().parent.parent
# The daemons the tests start are interactive runs unless a test says otherwise, also when the suite
# itself runs under a systemd service: a late source would be waited for (capture/waiting.py).
os.environ.pop("NOTIFY_SOCKET", None)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def need(ok: bool, reason: str) -> None:
    """Skip (locally) or fail (under CI=true) when a real part is missing."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = Path(os.environ.get("SER_STREAM_DATA_DIR", ROOT.parent / "shared" / "data"))
    need((d / "ravdess" / "Actor_01").is_dir(), f"RAVDESS corpus not found under {d} (set SER_STREAM_DATA_DIR)")
    return d


@pytest.fixture(scope="session")
def ravdess(data_dir: Path) -> Path:
    return data_dir / "ravdess"


@pytest.fixture(scope="session")
def wav48(data_dir: Path) -> Path:
    """An original 48 kHz stereo RAVDESS WAV (actor 20, two identical channels)."""
    p = data_dir / "ravdess-original-wav" / "03-01-03-01-02-01-20.wav"
    need(p.is_file(), f"{p} not found")
    return p


@pytest.fixture(scope="session")
def clip(ravdess: Path) -> Path:
    """An angry 16 kHz FLAC clip (actor 12, strong intensity)."""
    return ravdess / "Actor_12" / "03-01-05-02-01-01-12.flac"


@pytest.fixture(scope="session")
def long_wav(ravdess: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Exactly 30 s of real speech: actor 12's clips back to back."""
    import numpy as np
    import soundfile as sf

    files = sorted((ravdess / "Actor_12").glob("*.flac"))[:12]
    y = np.concatenate([sf.read(f, dtype="float32")[0] for f in files])[: 30 * 16000]
    assert y.shape[0] == 30 * 16000
    out = tmp_path_factory.mktemp("audio") / "actor12-30s.wav"
    sf.write(out, y, 16000, subtype="FLOAT")
    return out


class CollectSink:
    """A sink that keeps every window message (for run_stream in-process)."""

    name = "collect"

    def __init__(self) -> None:
        self.windows: list = []

    def publish_window(self, msg) -> None:
        self.windows.append(msg)

    def publish_state(self, msg) -> None:
        pass

    def publish_event(self, msg) -> None:
        pass

    def close(self) -> None:
        pass


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120, input: bytes | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m ser_stream ARGS`` and capture stdout/stderr as text."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SER_STREAM_") or k == "SER_STREAM_DATA_DIR"}
    full_env = {**base, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "ser_stream", *args],
        cwd=ROOT,
        env=full_env,
        input=input,
        capture_output=True,
        timeout=timeout,
    )


class PulseServer:
    """A private PulseAudio daemon with a null sink; ``env`` points clients at it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "native"
        (root / "run").mkdir(parents=True, exist_ok=True)
        self.env = self.environment(root)
        self.log = open(root / "pulseaudio.log", "wb")
        self.proc = subprocess.Popen(
            [
                "pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--disable-shm=yes",
                "--use-pid-file=no", "--log-target=stderr",
                "-L", f"module-native-protocol-unix socket={self.socket} auth-anonymous=1",
                "-L", "module-null-sink sink_name=sertest rate=48000 channels=2",
            ],
            env={**os.environ, **self.env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_listening(self.socket, proc=self.proc, what="pulseaudio", log=root / "pulseaudio.log")
        except RuntimeError:
            self.stop()
            raise

    @staticmethod
    def environment(root: Path) -> dict[str, str]:
        """What points a client at the server of ``root`` (also before it runs)."""
        return {
            "XDG_RUNTIME_DIR": str(root / "run"),
            "HOME": str(root),
            "PULSE_SERVER": f"unix:{root / 'native'}",
            "PULSE_SOURCE": "sertest.monitor",
            "PULSE_SINK": "sertest",
        }

    def play(self, path: Path) -> subprocess.Popen:
        return subprocess.Popen(["paplay", str(path)], env={**os.environ, **self.env})

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


@pytest.fixture(scope="session")
def pulse(tmp_path_factory: pytest.TempPathFactory):
    need(shutil.which("pulseaudio") is not None and shutil.which("paplay") is not None,
         "PulseAudio (pulseaudio, paplay) is not installed")
    server = PulseServer(tmp_path_factory.mktemp("pulse"))
    yield server
    server.stop()


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
                                              if os.access(p, os.X_OK)), None)


class Mosquitto:
    """A real mosquitto broker on 127.0.0.1 and a free port, optionally with a password or TLS."""

    def __init__(self, root: Path, *, users: dict[str, str] | None = None, tls: dict[str, Path] | None = None,
                 persistence: bool = False, start: bool = True) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tls = tls
        keep = ["persistence true", f"persistence_location {root}/"] if persistence else ["persistence false"]
        lines = [f"listener {self.port} 127.0.0.1", *keep, "log_type error", "log_type warning",
                 "log_type notice", "log_type information", "connection_messages true"]
        if os.geteuid() == 0:
            lines.append("user root")  # else mosquitto drops to its own user, who cannot read our temp files
        if users:
            pw = root / "passwd"
            pw.write_text("".join(f"{u}:{p}\n" for u, p in users.items()))
            subprocess.run(["mosquitto_passwd", "-U", str(pw)], check=True, capture_output=True)
            pw.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines.append("allow_anonymous true")
        if tls:
            lines += [f"cafile {tls['ca']}", f"certfile {tls['cert']}", f"keyfile {tls['key']}"]
        self.conf = root / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None
        self.log = None
        if start:  # else the test starts it later (a broker that is late at boot)
            self.start()

    def start(self) -> None:
        self.log = open(self.root / "mosquitto.log", "ab")
        self.proc = subprocess.Popen([mosquitto_binary(), "-c", str(self.conf)], stdout=self.log, stderr=subprocess.STDOUT)
        wait_until_listening(self.port, proc=self.proc, what="mosquitto", log=self.root / "mosquitto.log")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        if self.log is not None:
            self.log.close()

    def config_args(self, **extra: str) -> dict[str, str]:
        """Environment for a ser-stream run against this broker."""
        env = {"SER_STREAM_MQTT__ENABLED": "true", "SER_STREAM_MQTT__HOST": "127.0.0.1",
               "SER_STREAM_MQTT__PORT": str(self.port)}
        env.update(extra)
        return env


@pytest.fixture
def broker_factory(tmp_path: Path):
    need(mosquitto_binary() is not None and shutil.which("mosquitto_passwd") is not None,
         "mosquitto (Debian package mosquitto) is not installed")
    started: list[Mosquitto] = []

    def make(**kw) -> Mosquitto:
        b = Mosquitto(tmp_path / f"broker{len(started)}", **kw)
        started.append(b)
        return b

    yield make
    for b in started:
        b.stop()


@pytest.fixture
def broker(broker_factory) -> Mosquitto:
    return broker_factory()


# The daemon with the kernel's memory-deny-write-execute on (PR_SET_MDWE, what systemd's
# MemoryDenyWriteExecute=yes asks for): no mapping may be writable and executable.
MDWE = """
import ctypes, errno, runpy, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    sys.exit(f"PR_SET_MDWE failed: {errno.errorcode.get(ctypes.get_errno())}")
sys.argv = ["ser-stream", *sys.argv[1:]]
runpy.run_module("ser_stream", run_name="__main__", alter_sys=True)
"""


def mdwe_supported() -> bool:
    """PR_SET_MDWE exists (Linux 6.3 or later)."""
    probe = "import ctypes, sys; sys.exit(ctypes.CDLL(None).prctl(65, 1, 0, 0, 0) != 0)"
    return subprocess.run([sys.executable, "-c", probe]).returncode == 0
