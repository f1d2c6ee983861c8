"""The daemon against real Home Assistant Core (see tests/home_assistant.py), asked through its REST API:
the README's entity ids under one device, states while a clip plays, the mute switch and the reset
button pressed from Home Assistant, availability after a clean stop and after SIGKILL, discovery
re-sent when Home Assistant restarts, `mqtt-unregister` leaving no entity and no warning, and the
README's example automations accepted.

Under CI=true a Home Assistant that is not installed (./dev.sh test installs it) or does not start fails.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from .conftest import ROOT, Mosquitto, cli, mosquitto_binary, need
from .home_assistant import HomeAssistant, installed, readme_automations, wanted_releases
from .test_mqtt import DEVICE, Daemon

RELEASES = wanted_releases()
ENTITY = f"ser_stream_{DEVICE}"
MOOD = f"sensor.{ENTITY}_mood"


def readme_entities() -> set[str]:
    """The entity ids of the README's entity table, for device_id ``livingroom``."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("**Home Assistant entities**"):]
    section = section[: section.index("\n\n")]
    return {m.replace("<id>", DEVICE) for m in re.findall(r"^\| `(\w+\.ser_stream_<id>_\w+)`", section, re.M)}


@pytest.fixture(scope="module", params=RELEASES)
def ha(request, tmp_path_factory: pytest.TempPathFactory):
    release = request.param
    need(installed(release), f"Home Assistant Core {release} is not installed under .venv-ha "
                             "(./dev.sh test installs it where its Python is found)")
    need(mosquitto_binary() is not None, "mosquitto (Debian package mosquitto) is not installed")
    root = tmp_path_factory.mktemp(f"ha-{release}")
    broker = Mosquitto(root / "broker")
    home = HomeAssistant(release, root, broker=broker)
    try:
        home.start()
        home.onboard()
        home.add_mqtt()
        yield home
    finally:
        home.stop()
        broker.stop()


@pytest.fixture(scope="module")
def ninety_seconds(long_wav: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """90 s of speech (the 30 s clip three times), long enough to outlast a Home Assistant restart."""
    y, sr = sf.read(long_wav, dtype="float32")
    out = tmp_path_factory.mktemp("ha-audio") / "speech-90s.wav"
    sf.write(out, np.concatenate([y, y, y]), sr, subtype="FLOAT")
    return out


def daemon(ha: HomeAssistant, wav: Path, tmp: Path, **env: str) -> Daemon:
    return Daemon(["--input", str(wav)], ha.broker.config_args(**env), tmp)


def available(ha: HomeAssistant, entity_id: str) -> bool:
    s = ha.state(entity_id)
    return s is not None and s["state"] != "unavailable"


def test_entities_states_and_controls(ha: HomeAssistant, long_wav: Path, tmp_path: Path):
    d = daemon(ha, long_wav, tmp_path)
    try:
        ha.wait(lambda: available(ha, MOOD), what="the mood sensor")
        # one device holding the README's entities, with the README's ids
        device = ha.template(f"{{{{ device_id('{MOOD}') }}}}").strip()
        assert device and device != "None"
        entities = set(ha.template(f"{{{{ device_entities('{device}') | join(',') }}}}").strip().split(","))
        assert entities == readme_entities(), (entities, readme_entities())
        assert ha.template(f"{{{{ device_attr('{device}', 'name') }}}}").strip() == f"ser-stream {DEVICE}"
        mood = ha.state(MOOD)
        if "options" in mood["attributes"]:  # 2024.2 and later (docs: the minimum version)
            assert mood["attributes"]["options"][-1] == "idle"

        # states follow the clip: speech on, numeric arousal and valence, a mood from the enum
        ha.wait(lambda: ha.state(f"binary_sensor.{ENTITY}_speech")["state"] == "on", what="speech on")
        ha.wait(lambda: ha.state(f"sensor.{ENTITY}_arousal")["state"] not in ("unknown", "unavailable"), what="arousal")
        for sensor in ("arousal", "valence"):
            assert -1.0 <= float(ha.state(f"sensor.{ENTITY}_{sensor}")["state"]) <= 1.0
        ha.wait(lambda: ha.state(MOOD)["state"] != "idle", timeout=20, what="a mood other than idle during speech")
        confidence = ha.state(f"sensor.{ENTITY}_confidence")
        assert 0.0 < float(confidence["state"]) <= 100.0 and confidence["attributes"]["unit_of_measurement"] == "%"
        assert set(ha.state(MOOD)["attributes"]) >= {"confidence", "probabilities", "arousal", "valence", "since"}

        # the mute switch from Home Assistant: the daemon stops listening, the mood is idle, nothing made up
        ha.call("switch", "turn_on", f"switch.{ENTITY}_mute")
        ha.wait(lambda: ha.state(MOOD)["state"] == "idle", what="idle while muted")
        assert ha.state(f"switch.{ENTITY}_mute")["state"] == "on"
        for sensor in ("confidence", "arousal", "valence"):
            assert ha.state(f"sensor.{ENTITY}_{sensor}")["state"] == "unknown", sensor
        assert ha.state(f"binary_sensor.{ENTITY}_speech")["state"] == "off"
        assert "muted" in d.log
        ha.call("switch", "turn_off", f"switch.{ENTITY}_mute")
        ha.wait(lambda: ha.state(f"switch.{ENTITY}_mute")["state"] == "off", what="unmuted")

        # the reset button from Home Assistant
        ha.call("button", "press", f"button.{ENTITY}_reset_adaptation")
        ha.wait(lambda: "adaptation statistics reset to the population's" in d.log, what="the reset in the daemon's log")
    finally:
        d.proc.send_signal(signal.SIGTERM)
    assert d.wait() == 0, d.log
    # a clean stop: every entity unavailable
    ha.wait(lambda: all(s["state"] == "unavailable" for s in ha.states(ENTITY).values()), what="unavailable after SIGTERM")


def test_last_will_and_no_stale_button_without_adaptation(ha: HomeAssistant, long_wav: Path, tmp_path: Path):
    d = daemon(ha, long_wav, tmp_path, SER_STREAM_ADAPTATION__ENABLED="false")
    ha.wait(lambda: available(ha, MOOD), what="the mood sensor")
    # the button an earlier run (adaptation on) created is removed, not left available
    ha.wait(lambda: ha.state(f"button.{ENTITY}_reset_adaptation") is None, what="the reset button removed")
    d.proc.kill()
    d.wait()
    ha.wait(lambda: all(s["state"] == "unavailable" for s in ha.states(ENTITY).values()),
            what="unavailable after SIGKILL (the last will)")


def test_discovery_resent_after_a_home_assistant_restart(ha: HomeAssistant, ninety_seconds: Path, tmp_path: Path):
    d = daemon(ha, ninety_seconds, tmp_path)
    try:
        ha.wait(lambda: available(ha, MOOD), what="the mood sensor")
        before = d.log.count("re-sending discovery")
        ha.stop()
        ha.start()
        ha.wait(lambda: d.log.count("re-sending discovery") > before, what="the daemon re-sending discovery")
        ha.wait(lambda: available(ha, MOOD) and available(ha, f"button.{ENTITY}_reset_adaptation"),
                what="the entities back after the restart")
    finally:
        d.proc.send_signal(signal.SIGTERM)
    assert d.wait() == 0, d.log


def test_a_device_id_with_capitals_and_a_hyphen(ha: HomeAssistant, long_wav: Path, tmp_path: Path):
    """The README's rule for <id>: lower case, "-" as "_" (what Home Assistant derives from the names)."""
    env = {"SER_STREAM_MQTT__DEVICE_ID": "Living-Room"}
    d = daemon(ha, long_wav, tmp_path, **env)
    try:
        ha.wait(lambda: available(ha, "sensor.ser_stream_living_room_mood"), what="sensor.ser_stream_living_room_mood")
        assert set(ha.states("ser_stream_living_room_")) == {
            e.replace(DEVICE, "living_room") for e in readme_entities()}
    finally:
        d.proc.send_signal(signal.SIGTERM)
        d.wait()
    r = cli("mqtt-unregister", env={**ha.broker.config_args(), **env})
    assert r.returncode == 0, r.stderr.decode()
    ha.wait(lambda: not ha.states("ser_stream_living_room_"), what="the Living-Room entities removed")


def test_unregister_removes_everything_without_a_warning(ha: HomeAssistant, long_wav: Path, tmp_path: Path):
    d = daemon(ha, long_wav, tmp_path)
    ha.wait(lambda: available(ha, MOOD), what="the mood sensor")
    d.proc.send_signal(signal.SIGTERM)
    assert d.wait() == 0, d.log
    # as a user retiring the device would: automations that use its entities off first (else their
    # numeric_state triggers warn that the entity is gone, which is Home Assistant's report, not ours)
    for automation in ha.states("automation."):
        ha.call("automation", "turn_off", automation)
    seen = len(ha.log_lines())
    r = cli("mqtt-unregister", env={**ha.broker.config_args(), "SER_STREAM_MQTT__DEVICE_ID": DEVICE})
    assert r.returncode == 0, r.stderr.decode()
    ha.wait(lambda: not ha.states(ENTITY), what="every entity removed")
    ha.wait(lambda: ha.template(f"{{{{ device_id('{MOOD}') }}}}").strip() == "None", what="the device removed")
    time.sleep(2.0)  # what Home Assistant would log about the cleared state topics comes within ms
    new = [line for line in ha.log_lines()[seen:] if re.search(r"\b(WARNING|ERROR|CRITICAL)\b", line)]
    assert new == [], "\n".join(new)


def test_readme_automations_are_accepted(ha: HomeAssistant):
    automations = ha.states("automation.")
    assert len(automations) == readme_automations_count(), automations
    bad = [line for line in ha.log_lines() if "Invalid config for" in line and "automation" in line]
    assert bad == [], "\n".join(bad)


def readme_automations_count() -> int:
    return len(re.findall(r"^- alias:", readme_automations(), re.M))


def test_ha_release_is_documented():
    """The README names the Home Assistant releases these tests run on."""
    text = (ROOT / "README.md").read_text()
    for release in RELEASES:
        assert release in text, f"README does not name the tested Home Assistant {release}"
