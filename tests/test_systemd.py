"""The shipped unit passes `systemd-analyze verify` and keeps a low exposure score."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT, need

UNIT = ROOT / "systemd" / "ser-stream.service"


def local_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this environment's ser-stream (verify checks it exists)."""
    exe = Path(sys.executable).parent / "ser-stream"
    assert exe.exists()
    text = UNIT.read_text().replace("/opt/ser-stream/.venv/bin/ser-stream", str(exe))
    out = tmp_path / "ser-stream.service"
    out.write_text(text)
    return out


def test_unit_verifies(tmp_path: Path):
    need(shutil.which("systemd-analyze") is not None, "systemd-analyze is not installed")
    r = subprocess.run(["systemd-analyze", "verify", str(local_unit(tmp_path))], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "ser-stream.service" not in r.stderr, r.stderr  # no warnings about our unit


def test_unit_hardening_score(tmp_path: Path):
    need(shutil.which("systemd-analyze") is not None, "systemd-analyze is not installed")
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", str(local_unit(tmp_path))],
                       capture_output=True, text=True)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout + r.stderr)
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) <= 1.5  # 1.5 measured: loopback and private ranges only, private mounts


def test_unit_runs_the_documented_command():
    text = UNIT.read_text()
    assert "Type=notify" in text and "WatchdogSec=" in text
    assert re.search(r"^ExecStart=\S+/ser-stream run --config /etc/ser-stream/config.yaml", text, re.M)


def test_sd_notify_ready_watchdog_and_stopping(tmp_path: Path, clip: Path):
    import socket

    from .conftest import cli

    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    try:
        r = cli("run", "--input", str(clip), env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "3000000"})
        assert r.returncode == 0, r.stderr.decode()
        messages = []
        while True:
            try:
                messages.append(sock.recv(4096).decode())
            except socket.timeout:
                break
            if "STOPPING=1" in messages[-1]:
                break
    finally:
        sock.close()
    assert messages[0].startswith("READY=1") and "STATUS=listening on" in messages[0]
    assert "WATCHDOG=1" in messages  # pinged while streaming the 3.3 s clip in real time
    assert messages[-1] == "STOPPING=1"
