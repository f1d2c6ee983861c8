"""`ser-stream install-service`: write a systemd unit and a starting config, verify, say what to run.

System service (default): the template unit ``ser-stream@.service`` (one instance per room, config
``CONFIG_DIR/<room>.yaml``, state in ``/var/lib/ser-stream/<room>``) into ``/etc/systemd/system``.
``--user``: the user unit ``ser-stream.service`` into ``~/.config/systemd/user``, for a desktop whose
microphone lives in the user's PipeWire/PulseAudio session. The units are the repository's
(``systemd/``) with ExecStart pointing at this installation's ``ser-stream``. An existing config is
never overwritten. ``systemd-analyze verify`` checks the unit when it is installed on the machine.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .errors import EX_CONFIG, SerStreamError
from .packaged import packaged_file

log = logging.getLogger(__name__)

ROOM = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _units() -> Path:
    """The repository's systemd/ folder, installed as the package ser_stream.units."""
    return packaged_file("ser_stream.units", "ser-stream@.service", checkout_folder="systemd").parent


class InstallError(SerStreamError):
    exit_code = EX_CONFIG


def _cannot_write(exc: OSError) -> InstallError:
    return InstallError(f"cannot write {exc.filename}: {exc.strerror} (run as root, or use --user)")


def _executable() -> str:
    exe = Path(sys.executable).parent / "ser-stream"
    return str(exe if exe.exists() else (shutil.which("ser-stream") or exe))


# The units in systemd/ work as they are for the documented layout; these are the paths in them that an
# installation elsewhere fills in. Each must be in its unit: a unit edited without them is an error here.
EXECUTABLE = "/opt/ser-stream/.venv/bin/ser-stream"
USER_CONFIG = "%h/.config/ser-stream/config.yaml"
ROOM_CONFIG = "/etc/ser-stream/%i.yaml"


def fill(text: str, *, unit: str, values: dict[str, str]) -> str:
    """``text`` with every placeholder path (key) replaced by its value; raises InstallError naming the
    unit and the placeholder when one is absent (the unit changed and this code did not)."""
    for placeholder, value in values.items():
        if placeholder not in text:
            raise InstallError(f"{unit}: has no {placeholder!r} to fill in; the unit and ser_stream/install.py disagree")
        text = text.replace(placeholder, value)
    return text


def verify_unit(analyze: str, text: str, *, name: str) -> None:
    """``systemd-analyze verify`` of the unit ``text`` as file ``name`` in a temporary folder of its own
    (never in the live unit folder, where an administrator's file of that name could be). Raises
    InstallError with the problems it reports about the unit."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ser-stream-verify-") as tmp:
        target = Path(tmp) / name
        target.write_text(text)
        # (a user unit is verified as a system one: its directives are valid in both, and --user needs a
        # running user manager)
        r = subprocess.run([analyze, "verify", str(target)], capture_output=True, text=True, timeout=60)
    problems = [line for line in r.stderr.splitlines() if name.split("@")[0].removesuffix(".service") in line]
    if r.returncode != 0 or problems:
        raise InstallError(f"systemd-analyze verify {name}: " + "; ".join(problems or r.stderr.splitlines()[-3:]))


def _starting_config(room: str) -> str:
    return f"""# ser-stream, room {room}. Every key, with its default: config.yaml in the repository, or
# `ser-stream check-config -c THIS_FILE`, which prints the effective configuration.
audio:
  device: null            # input device name or index (`ser-stream devices`); null = the default
  url: null               # or a camera/intercom: rtsp://user:password@192.168.1.20:554/stream1
mqtt:
  enabled: false          # true, with host, to publish to Home Assistant
  host: localhost
  device_id: {room}
"""


def install_service(*, user: bool, room: str, unit_dir: Path | None, config_dir: Path | None,
                    network: bool = False) -> list[str]:
    """Write the unit (and the room's config when absent); returns the commands to run next. ``network``
    (or a kept room config with ``audio.url``): also the instance's drop-in ``network-source.conf``,
    which takes away sound devices and the audio group."""
    from .config import load_config

    if not ROOM.match(room):
        raise InstallError(f"--room {room!r}: use letters, digits, '-' and '_' (it names the unit and MQTT device)")
    exe = _executable()
    if user:
        unit_dir = unit_dir or Path.home() / ".config" / "systemd" / "user"
        config_dir = config_dir or Path.home() / ".config" / "ser-stream"
        name = "ser-stream.service"
        text = fill((_units() / "ser-stream-user.service").read_text(), unit="ser-stream-user.service",
                    values={USER_CONFIG: str(config_dir / "config.yaml"), EXECUTABLE: exe})
        config = config_dir / "config.yaml"
    else:
        unit_dir = unit_dir or Path("/etc/systemd/system")
        config_dir = config_dir or Path("/etc/ser-stream")
        name = "ser-stream@.service"
        text = fill((_units() / "ser-stream@.service").read_text(), unit="ser-stream@.service",
                    values={ROOM_CONFIG: f"{config_dir}/%i.yaml", EXECUTABLE: exe})
        config = config_dir / f"{room}.yaml"
    try:
        unit_dir.mkdir(parents=True, exist_ok=True)
        (unit_dir / name).write_text(text)
        if config.exists():
            log.info("%s exists: kept as it is", config)
        else:
            config_dir.mkdir(parents=True, exist_ok=True)
            config.write_text(_starting_config(room))
            config.chmod(0o640)
            log.info("wrote %s (edit audio.device or audio.url, and mqtt)", config)
    except OSError as exc:
        raise _cannot_write(exc) from None
    cfg = load_config(config)  # the starting config (or the kept one) must be valid
    log.info("wrote %s", unit_dir / name)
    if not user and (network or cfg.audio.url is not None):
        dropin = unit_dir / f"ser-stream@{room}.service.d" / "network-source.conf"
        try:
            dropin.parent.mkdir(parents=True, exist_ok=True)
            dropin.write_text((_units() / "network-source.conf").read_text())
        except OSError as exc:
            raise _cannot_write(exc) from None
        log.info("wrote %s (a network source: no sound devices, no audio group)", dropin)
    analyze = shutil.which("systemd-analyze")
    if analyze:  # an instance (a template alone cannot be verified), or the user unit
        verify_unit(analyze, text, name=name if user else f"ser-stream@{room}.service")
        log.info("systemd-analyze verify: clean")
    if user:
        return ["systemctl --user daemon-reload", "systemctl --user enable --now ser-stream",
                "journalctl --user -u ser-stream -f"]
    return ["systemctl daemon-reload", f"systemctl enable --now ser-stream@{room}", f"journalctl -u ser-stream@{room} -f"]
