"""The shipped unit passes `systemd-analyze verify` and keeps a low exposure score."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

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
    assert float(m.group(1)) <= 1.2  # 1.2 measured: also no W+X memory, no realtime, no netlink, private users


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


def test_template_unit_verifies_and_scores_like_the_plain_one(tmp_path: Path):
    need(shutil.which("systemd-analyze") is not None, "systemd-analyze is not installed")
    exe = Path(sys.executable).parent / "ser-stream"
    unit = tmp_path / "ser-stream@kitchen.service"
    unit.write_text((ROOT / "systemd" / "ser-stream@.service").read_text().replace("/opt/ser-stream/.venv/bin/ser-stream",
                                                                                     str(exe)))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert r.returncode == 0 and "ser-stream" not in r.stderr, r.stderr
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)], capture_output=True, text=True)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout + r.stderr)
    assert m and float(m.group(1)) <= 1.2, r.stdout[-500:]


def test_install_service_writes_verifies_and_keeps_an_existing_config(tmp_path: Path):
    from .conftest import cli

    need(shutil.which("systemd-analyze") is not None, "systemd-analyze is not installed")
    args = ["install-service", "--room", "kitchen", "--unit-dir", str(tmp_path / "units"), "--config-dir", str(tmp_path / "etc")]
    r = cli(*args)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().splitlines() == ["systemctl daemon-reload", "systemctl enable --now ser-stream@kitchen",
                                             "journalctl -u ser-stream@kitchen -f"]
    unit = (tmp_path / "units" / "ser-stream@.service").read_text()
    exe = Path(sys.executable).parent / "ser-stream"
    assert f"ExecStart={exe} run --config {tmp_path / 'etc'}/%i.yaml" in unit and "StateDirectory=ser-stream/%i" in unit
    assert "systemd-analyze verify: clean" in r.stderr.decode()
    config = tmp_path / "etc" / "kitchen.yaml"
    assert "device_id: kitchen" in config.read_text()
    assert cli("check-config", "-c", str(config)).returncode == 0
    config.write_text(config.read_text() + "logging:\n  level: WARNING\n")
    r = cli(*args)
    assert r.returncode == 0 and "exists: kept" in r.stderr.decode() and "WARNING" in config.read_text()
    r = cli("install-service", "--user", "--unit-dir", str(tmp_path / "user"), "--config-dir", str(tmp_path / "uc"))
    assert r.returncode == 0 and r.stdout.decode().startswith("systemctl --user daemon-reload"), r.stderr.decode()
    assert f"--config {tmp_path / 'uc'}/config.yaml" in (tmp_path / "user" / "ser-stream.service").read_text()
    r = cli("install-service", "--room", "../etc/passwd", "--unit-dir", str(tmp_path / "u2"))
    assert r.returncode == 78 and "--room '../etc/passwd'" in r.stderr.decode()


def exposure(root: Path, unit: str) -> float:
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", f"--root={root}", unit],
                       capture_output=True, text=True)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout + r.stderr)
    assert m, r.stdout[-500:] + r.stderr[-500:]
    return float(m.group(1))


def test_a_network_room_gets_no_sound_devices_and_a_lower_exposure(tmp_path: Path):
    from .conftest import cli

    need(shutil.which("systemd-analyze") is not None, "systemd-analyze is not installed")
    units = tmp_path / "root" / "etc" / "systemd" / "system"
    etc = tmp_path / "etc"
    for room, extra in (("kitchen", []), ("garage", ["--network"])):
        r = cli("install-service", "--room", room, "--unit-dir", str(units), "--config-dir", str(etc), *extra)
        assert r.returncode == 0 and "systemd-analyze verify: clean" in r.stderr.decode(), r.stderr.decode()
    # a room whose kept config names a stream gets the drop-in without the flag
    (etc / "porch.yaml").write_text("audio:\n  url: rtsp://192.168.1.20:554/stream1\n")
    r = cli("install-service", "--room", "porch", "--unit-dir", str(units), "--config-dir", str(etc))
    assert r.returncode == 0, r.stderr.decode()
    assert not (units / "ser-stream@kitchen.service.d").exists()
    for room in ("garage", "porch"):
        dropin = (units / f"ser-stream@{room}.service.d" / "network-source.conf").read_text()
        assert "PrivateDevices=yes" in dropin and "\nSupplementaryGroups=\n" in dropin
    assert exposure(tmp_path / "root", "ser-stream@kitchen.service") <= 1.2
    assert exposure(tmp_path / "root", "ser-stream@garage.service") <= 1.0


def test_a_private_user_namespace_keeps_the_audio_group(tmp_path_factory):
    """What PrivateUsers=yes with SupplementaryGroups=audio relies on: in a user namespace where the audio
    group is not mapped (it shows as nogroup), the kernel still grants a root:audio 0640 file (as it would
    /dev/snd/*) to a member, and refuses it to a non-member."""
    need(os.geteuid() == 0, "needs root to switch to an unprivileged user with a chosen group")
    need(shutil.which("setpriv") is not None and shutil.which("unshare") is not None, "setpriv/unshare missing")
    gid = 29  # Debian's audio group
    folder = Path(tempfile.mkdtemp(prefix="ser-userns-", dir="/tmp"))
    try:
        folder.chmod(0o755)
        device = folder / "pcm"
        device.write_text("audio\n")
        os.chown(device, 0, gid)
        device.chmod(0o640)
        def read_as(*groups: str) -> subprocess.CompletedProcess:
            return subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", *groups, "--inh-caps=-all",
                                   "unshare", "--user", "sh", "-c", f"id -G; cat {device}"],
                                  capture_output=True, text=True, timeout=30)
        member = read_as("--groups", str(gid))
        need(member.returncode == 0 or "Operation not permitted" not in member.stderr, "user namespaces are disabled")
        assert member.returncode == 0 and member.stdout.split("\n")[1] == "audio", member.stderr
        assert member.stdout.split()[0] == "65534"  # inside, the group is unmapped (nogroup) yet effective
        stranger = read_as("--clear-groups")
        assert stranger.returncode != 0 and "Permission denied" in stranger.stderr
    finally:
        shutil.rmtree(folder)


def test_install_service_never_touches_a_unit_file_it_did_not_write(tmp_path: Path):
    """The instance is verified in a folder of its own: an administrator's ser-stream@ROOM.service in the
    unit folder stays byte for byte, and a unit that lost a path install-service fills in is an error."""
    from ser_stream.install import EXECUTABLE, InstallError, fill

    from .conftest import cli

    need(shutil.which("systemd-analyze") is not None, "systemd-analyze is not installed")
    units = tmp_path / "units"
    units.mkdir()
    theirs = units / "ser-stream@attic.service"
    theirs.write_text("# the administrator's own instance unit\n[Service]\nExecStart=/bin/true\n")
    before = theirs.read_bytes()
    r = cli("install-service", "--room", "attic", "--unit-dir", str(units), "--config-dir", str(tmp_path / "etc"))
    assert r.returncode == 0, r.stderr.decode()
    assert "systemd-analyze verify: clean" in r.stderr.decode()
    assert theirs.read_bytes() == before
    assert sorted(p.name for p in units.iterdir()) == ["ser-stream@.service", "ser-stream@attic.service"]
    with pytest.raises(InstallError, match=r"ser-stream@.service: has no '/opt/ser-stream/.venv/bin/ser-stream'"):
        fill("[Service]\nExecStart=/usr/bin/ser-stream run\n", unit="ser-stream@.service", values={EXECUTABLE: "/x"})


def test_the_units_prevent_a_restart_for_exactly_the_exit_codes_that_will_not_fix_themselves():
    """Issue 28: RestartPreventExitStatus= names errors.PERMANENT_EXIT_CODES, in every unit; a source that
    is late at boot is never among them (a camera room must come back by itself)."""
    import ser_stream.capture.network  # noqa: F401 - registers its errors
    import ser_stream.cli  # noqa: F401
    from ser_stream import errors

    units = sorted((ROOT / "systemd").glob("*.service"))
    assert len(units) == 3
    for unit in units:
        found = re.findall(r"^RestartPreventExitStatus=(.*)$", unit.read_text(), re.M)
        assert len(found) == 1, unit
        assert {int(c) for c in found[0].split()} == set(errors.PERMANENT_EXIT_CODES), unit

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    kinds = list(subclasses(errors.SerStreamError))
    codes = {k.exit_code for k in kinds}
    assert errors.PERMANENT_EXIT_CODES <= codes  # each is an exit the code can take
    late = [k for k in kinds if k.late]
    assert {k.__name__ for k in late} == {"SourceUnreachableError", "SourceAbsentError"}
    # a late source exits (interactive run only) with a code systemd would retry
    assert not {k.exit_code for k in late} & errors.PERMANENT_EXIT_CODES
