from pathlib import Path

import pytest

from ser_stream.config import Config, ConfigError, load_config

from .conftest import ROOT, cli


def test_defaults_match_the_contract():
    c = load_config(None)
    assert c.window.length_seconds == 3.0 and c.window.hop_seconds == 1.0
    assert c.audio.device is None and c.audio.sample_rate_hz is None and c.audio.channels == 1
    assert c.mqtt.enabled is False and c.mqtt.port == 1883 and c.mqtt.base_topic == "ser_stream"
    assert c.mqtt.homeassistant.prefix == "homeassistant"
    assert c.model.path is None and c.vad.enabled is True


def test_shipped_config_yaml_is_valid_and_equals_the_defaults():
    assert load_config(ROOT / "config.yaml") == Config()


def test_config_is_frozen():
    c = load_config(None)
    with pytest.raises(Exception):
        c.window.hop_seconds = 2.0  # type: ignore[misc]


def test_precedence_flags_over_env_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    f = tmp_path / "c.yaml"
    f.write_text("mqtt: {host: from-file, port: 1884}\naudio: {channels: 2}\n")
    monkeypatch.setenv("SER_STREAM_MQTT__HOST", "from-env")
    monkeypatch.setenv("SER_STREAM_WINDOW__HOP_SECONDS", "0.5")
    c = load_config(f, overrides={"audio": {"device": "pulse"}})
    assert c.mqtt.host == "from-env"  # env beats file
    assert c.mqtt.port == 1884  # file beats default
    assert c.window.hop_seconds == 0.5  # env, parsed to float
    assert c.audio.device == "pulse" and c.audio.channels == 2  # flag merged with file
    c2 = load_config(f, overrides={"mqtt": {"host": "from-flag"}})
    assert c2.mqtt.host == "from-flag"


@pytest.mark.parametrize(
    "text, needles",
    [
        ("mqtt: {hots: x}\n", ["mqtt.hots", "unknown key", "'x'"]),
        ("bogus: {a: 1}\n", ["bogus", "unknown key"]),
        ("mqtt: {port: abc}\n", ["mqtt.port", "'abc'"]),
        ("window: {length_seconds: 3, hop_seconds: 5}\n", ["window", "hop_seconds (5.0)"]),
        ("audio: {channels: 0}\n", ["audio.channels", "0"]),
        ("- a\n- b\n", ["top level must be a mapping"]),
        ("mqtt: {port: [1\n", ["not valid YAML"]),
    ],
)
def test_bad_config_names_the_file_key_and_value(tmp_path: Path, text: str, needles: list[str]):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(f)
    msg = str(err.value)
    assert str(f) in msg
    for n in needles:
        assert n in msg


def test_bad_env_value_names_the_variable(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SER_STREAM_MQTT__PORT", "seventy")
    with pytest.raises(ConfigError) as err:
        load_config(None)
    assert "mqtt.port" in str(err.value) and "seventy" in str(err.value) and "SER_STREAM_MQTT__PORT" in str(err.value)


def test_cli_bad_config_exits_78(tmp_path: Path):
    f = tmp_path / "bad.yaml"
    f.write_text("window: {hop_seconds: -1}\n")
    r = cli("check-config", "-c", str(f))
    assert r.returncode == 78
    assert "window.hop_seconds" in r.stderr.decode() and str(f) in r.stderr.decode()
    r = cli("run", "--input", "x.wav", "-c", str(tmp_path / "missing.yaml"))
    assert r.returncode == 78 and "missing.yaml" in r.stderr.decode()


def test_cli_check_config_prints_effective_config(tmp_path: Path):
    r = cli("check-config", env={"SER_STREAM_MQTT__HOST": "broker.lan"})
    assert r.returncode == 0, r.stderr
    assert "host: broker.lan" in r.stdout.decode()


def test_config_file_from_environment(tmp_path: Path):
    f = tmp_path / "c.yaml"
    f.write_text("window: {hop_seconds: 0.25}\n")
    r = cli("check-config", env={"SER_STREAM_CONFIG": str(f)})
    assert r.returncode == 0 and "hop_seconds: 0.25" in r.stdout.decode()
