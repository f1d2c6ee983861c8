"""The add-on's start script: the add-on's options (/data/options.json) and the Supervisor's MQTT
service become the daemon's configuration, then the daemon runs as the image's ser-stream user.

    ser-stream-addon run            write the configuration, run the daemon (the add-on's command)
    ser-stream-addon check-config   write it and print the effective configuration (ser-stream check-config)

MQTT: the Supervisor's MQTT service (the Mosquitto add-on) when there is one, else the options'
``mqtt_host``; with neither, MQTT stays off and the moods go to the add-on's log only. The password
travels in the daemon's environment, never in a file or a log line.
Runs with the image's Python (/opt/ser-stream/bin/python), which has PyYAML.
"""

from __future__ import annotations

import json
import os
import pwd
import sys
import urllib.error
import urllib.request
from pathlib import Path

import yaml

OPTIONS = Path(os.environ.get("SER_STREAM_ADDON_OPTIONS", "/data/options.json"))
CONFIG = Path(os.environ.get("SER_STREAM_ADDON_CONFIG", "/data/ser-stream.yaml"))
SUPERVISOR = os.environ.get("SER_STREAM_SUPERVISOR_URL", "http://supervisor")
NETWORK_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "srt://")
USER = "ser-stream"


def log(message: str) -> None:
    print(f"ser-stream-addon: {message}", file=sys.stderr, flush=True)


def supervisor_mqtt() -> dict | None:
    """The Supervisor's MQTT service ({host, port, username, password, ssl}), or None."""
    token = os.environ.get("SUPERVISOR_TOKEN")
    if not token:
        return None
    req = urllib.request.Request(f"{SUPERVISOR}/services/mqtt", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            answer = json.load(resp)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log(f"the Supervisor's MQTT service is not available ({exc}); using the options")
        return None
    data = answer.get("data") if answer.get("result") == "ok" else None
    return data if data and data.get("host") else None


def configuration(options: dict, service: dict | None) -> tuple[dict, dict[str, str]]:
    """The daemon's configuration and the environment it needs (the MQTT password) from the options."""
    source = (options.get("source") or "microphone").strip()
    audio: dict = {}
    if source.startswith(NETWORK_SCHEMES):
        audio["url"] = source
    elif source != "microphone":
        raise SystemExit(f"ser-stream-addon: option source: {source!r} is neither 'microphone' nor a URL "
                         f"({', '.join(NETWORK_SCHEMES)})")
    elif options.get("microphone"):
        audio["device"] = options["microphone"]
    mqtt: dict = {"device_id": options["device_id"]}
    env: dict[str, str] = {}
    if service is not None:
        mqtt.update(enabled=True, host=service["host"], port=int(service.get("port", 1883)),
                    username=service.get("username") or None, tls={"enabled": bool(service.get("ssl"))})
        password = service.get("password")
        origin = "the Supervisor's MQTT service"
    elif options.get("mqtt_host"):
        mqtt.update(enabled=True, host=options["mqtt_host"], port=int(options.get("mqtt_port") or 1883),
                    username=options.get("mqtt_username") or None)
        password = options.get("mqtt_password")
        origin = "the add-on's options"
    else:
        mqtt["enabled"] = False
        password, origin = None, None
    if password:
        env["SER_STREAM_MQTT__PASSWORD"] = password
    if origin:
        log(f"MQTT broker {mqtt['host']}:{mqtt['port']} from {origin}")
    else:
        log("no MQTT service and no mqtt_host option: MQTT is off, moods go to this log only")
    config = {
        "audio": audio,
        "adaptation": {"enabled": bool(options.get("adaptation", True))},
        "mqtt": mqtt,
        "logging": {"level": str(options.get("log_level", "info")).upper()},
    }
    return config, env


def drop_privileges() -> None:
    """Run as the image's unprivileged user; /data (the add-on's, root's) gets a folder of its own."""
    if os.geteuid() != 0:
        return
    user = pwd.getpwnam(USER)
    state = Path(os.environ.get("XDG_STATE_HOME", "/data")) / "ser-stream"
    state.mkdir(parents=True, exist_ok=True)
    for path in (state, *state.rglob("*")):
        os.chown(path, user.pw_uid, user.pw_gid)
    os.chown(CONFIG, user.pw_uid, user.pw_gid)
    os.setgroups([])
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "run"
    if command not in ("run", "check-config"):
        log(f"unknown command {command!r} (run, check-config)")
        return 64
    try:
        options = json.loads(OPTIONS.read_text())
    except (OSError, ValueError) as exc:
        log(f"cannot read the add-on's options {OPTIONS}: {exc}")
        return 78
    config, env = configuration(options, supervisor_mqtt())
    CONFIG.write_text(yaml.safe_dump(config, sort_keys=False))
    CONFIG.chmod(0o644)  # no secret in it
    drop_privileges()
    os.environ.update(env)
    exe = str(Path(sys.executable).with_name("ser-stream"))
    os.execv(exe, [exe, command, "--config", str(CONFIG), *argv[1:]])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
