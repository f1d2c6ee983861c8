"""MQTT and Home Assistant discovery against a real mosquitto broker on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest
import soundfile as sf
from paho.mqtt.enums import CallbackAPIVersion

from ser_stream.model import LABELS

from .conftest import ROOT, Mosquitto
from .test_cli import check_window_line

DEVICE = "livingroom"
BASE = f"ser_stream/{DEVICE}"
ENTITIES = {("sensor", "mood"), ("sensor", "confidence"), ("sensor", "arousal"), ("sensor", "valence"),
            ("binary_sensor", "speech"), ("switch", "mute"), ("button", "reset_adaptation")}


class Subscriber:
    """A plain MQTT client recording everything under the given topics, with receive times."""

    def __init__(self, broker: Mosquitto, topics=("#",), *, username=None, password=None, tls_ca=None) -> None:
        self.messages: list[tuple[float, str, str, bool]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        if username:
            self.client.username_pw_set(username, password)
        if tls_ca:
            self.client.tls_set(ca_certs=str(tls_ca))
        self.client.on_message = self._on_message
        self._subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 1) for t in topics])
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert self._subscribed.wait(10)

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.messages.append((time.time(), msg.topic, msg.payload.decode("utf-8", "replace"), bool(msg.retain)))

    def on(self, topic: str) -> list[tuple[float, str, bool]]:
        with self._lock:
            return [(t, p, r) for t, tp, p, r in self.messages if tp == topic]

    def wait_for(self, predicate, timeout: float = 15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = predicate()
            if result:
                return result
            time.sleep(0.05)
        raise AssertionError(f"timed out; received {len(self.messages)} messages: "
                             f"{[(tp, p[:60]) for _, tp, p, _ in self.messages[-15:]]}")

    def publish(self, topic: str, payload: str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Daemon:
    """`ser-stream run` in the background; stdout lines collected as they come."""

    def __init__(self, args: list[str], env: dict[str, str], tmp: Path) -> None:
        full = {k: v for k, v in os.environ.items() if not k.startswith("SER_STREAM_")}
        full.update({"SER_STREAM_MQTT__DEVICE_ID": DEVICE, "SER_STREAM_STATE__DIRECTORY": str(tmp / "state")})
        full.update(env)
        self.err_path = tmp / f"daemon-{time.monotonic_ns()}.log"
        self._err = open(self.err_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "ser_stream", "run", "--format", "json", *args],
                                     cwd=ROOT, env=full, stdout=subprocess.PIPE, stderr=self._err)
        self.lines: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    @property
    def log(self) -> str:
        return self.err_path.read_text()

    def wait(self, timeout: float = 60) -> int:
        rc = self.proc.wait(timeout)
        self._reader.join(5)
        self._err.close()
        return rc

    def wait_lines(self, n: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.lines) < n:
            assert self.proc.poll() is None or len(self.lines) >= n, self.log
            assert time.monotonic() < deadline, self.log
            time.sleep(0.05)


@pytest.fixture(scope="module")
def speech_then_silence(long_wav: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 s of speech then 4 s of digital silence."""
    y, sr = sf.read(long_wav, dtype="float32")
    out = tmp_path_factory.mktemp("mqtt-audio") / "speech-silence.wav"
    sf.write(out, np.concatenate([y[: 10 * sr], np.zeros(4 * sr, dtype=np.float32)]), sr)
    return out


def discovery(sub: Subscriber) -> dict[tuple[str, str], dict]:
    out = {}
    for _, topic, payload, _ in list(sub.messages):
        parts = topic.split("/")
        if parts[0] == "homeassistant" and parts[-1] == "config" and payload:
            out[(parts[1], parts[3])] = json.loads(payload)
    return out


def test_discovery_state_windows_events_and_offline_on_sigterm(broker, long_wav: Path, tmp_path: Path):
    sub = Subscriber(broker)
    d = Daemon(["--input", str(long_wav)], broker.config_args(), tmp_path)
    d.wait_lines(7)
    d.proc.send_signal(signal.SIGTERM)
    assert d.wait() == 0, d.log
    sub.wait_for(lambda: any(p == "offline" for _, p, _ in sub.on(f"{BASE}/availability")))

    announced = [(tp, p) for _, tp, p, _ in sub.messages if tp in (f"{BASE}/state", f"{BASE}/availability")]
    assert announced[0][0] == f"{BASE}/state", announced[:3]  # this run's state before "online", never the last run's
    conf = discovery(sub)
    assert set(conf) == ENTITIES
    uids = {c["unique_id"] for c in conf.values()}
    assert len(uids) == len(ENTITIES) and all(u.startswith(f"ser_stream_{DEVICE}_") for u in uids)
    for (component, obj), c in conf.items():
        assert c["availability"] == [{"topic": f"{BASE}/availability"}]
        assert c["payload_available"] == "online" and c["payload_not_available"] == "offline"
        assert c["device"]["identifiers"] == [f"ser_stream_{DEVICE}"]
        assert {"name", "model", "sw_version", "manufacturer"} <= set(c["device"])
        assert c["default_entity_id"] == f"{component}.ser_stream_{DEVICE}_{obj}"
        assert "name" in c and ("state_topic" in c or component == "button")
    mood = conf[("sensor", "mood")]
    assert mood["device_class"] == "enum" and mood["options"] == [*LABELS, "idle"]
    assert mood["state_topic"] == f"{BASE}/state" and mood["json_attributes_topic"] == f"{BASE}/state"
    assert conf[("switch", "mute")]["command_topic"] == f"{BASE}/mute/set"
    assert conf[("binary_sensor", "speech")]["device_class"] == "sound"
    assert conf[("button", "reset_adaptation")]["command_topic"] == f"{BASE}/adaptation/reset"

    windows = [json.loads(p) for _, p, _ in sub.on(f"{BASE}/window")]
    assert len(windows) == len(d.lines) >= 7
    assert windows == d.lines  # the same per-hop objects as stdout
    for w in windows:
        check_window_line(w)
    states = [json.loads(p) for _, p, _ in sub.on(f"{BASE}/state")]
    assert states and all(set(s) >= {"mood", "confidence", "speech", "muted", "since"} for s in states)
    assert any(s["speech"] for s in states)
    assert [p for _, p, _ in sub.on(f"{BASE}/availability")][-1] == "offline"
    events = [json.loads(p) for _, p, _ in sub.on(f"{BASE}/event")]
    assert events and events[0]["previous"] == "idle" and events[0]["mood"] in LABELS
    moods = [s["mood"] for s in states]
    for e in events:
        assert e["mood"] in moods
    for s in states:
        if s["arousal"] is not None:
            assert -1 <= s["arousal"] <= 1 and -1 <= s["valence"] <= 1
    sub.close()

    late = Subscriber(broker, topics=(f"{BASE}/#",))  # connects after the daemon is gone
    late.wait_for(lambda: late.on(f"{BASE}/state"))
    (_, payload, retained), = late.on(f"{BASE}/state")
    assert retained and json.loads(payload) == states[-1]
    assert late.on(f"{BASE}/availability")[0][1:] == ("offline", True)
    late.close()


def test_last_will_after_sigkill(broker, long_wav: Path, tmp_path: Path):
    sub = Subscriber(broker, topics=(f"{BASE}/availability",))
    d = Daemon(["--input", str(long_wav)], broker.config_args(), tmp_path)
    sub.wait_for(lambda: [p for _, p, _ in sub.on(f"{BASE}/availability")] == ["online"])
    d.proc.kill()
    d.wait()
    sub.wait_for(lambda: [p for _, p, _ in sub.on(f"{BASE}/availability")] == ["online", "offline"])
    late = Subscriber(broker, topics=(f"{BASE}/availability",))
    late.wait_for(lambda: late.on(f"{BASE}/availability"))
    assert late.on(f"{BASE}/availability")[0][1:] == ("offline", True)
    sub.close()
    late.close()


def test_mute_round_trip_stops_analysis_and_survives_a_restart(broker, long_wav: Path, tmp_path: Path):
    sub = Subscriber(broker)
    d = Daemon(["--input", str(long_wav)], broker.config_args(), tmp_path)
    d.wait_lines(4)
    sub.publish(f"{BASE}/mute/set", "ON")
    sub.wait_for(lambda: [p for _, p, _ in sub.on(f"{BASE}/mute")][-1:] == ["ON"])
    sub.wait_for(lambda: any(json.loads(p)["muted"] for _, p, _ in sub.on(f"{BASE}/state")))
    muted_state = [json.loads(p) for _, p, _ in sub.on(f"{BASE}/state") if json.loads(p)["muted"]][0]
    assert muted_state["mood"] == "idle" and muted_state["speech"] is False
    time.sleep(1.2)  # a hop in flight may still land
    n_muted = len(d.lines)
    time.sleep(3.5)
    assert len(d.lines) == n_muted  # no audio analysed while muted: no window at all
    sub.publish(f"{BASE}/mute/set", "OFF")
    sub.wait_for(lambda: [p for _, p, _ in sub.on(f"{BASE}/mute")][-1:] == ["OFF"])
    d.wait_lines(n_muted + 2, timeout=15)
    t_after = [w["t"] for w in d.lines[n_muted:]]
    assert t_after[0] >= d.lines[n_muted - 1]["t"] + 3  # stream time kept running while muted
    sub.publish(f"{BASE}/mute/set", "ON")
    sub.wait_for(lambda: [p for _, p, _ in sub.on(f"{BASE}/mute")][-1:] == ["ON"])
    d.proc.send_signal(signal.SIGTERM)
    assert d.wait() == 0
    assert (tmp_path / "state" / "mute").read_text().strip() == "ON"

    # restarted with the same state directory: still muted, analyses nothing
    d2 = Daemon(["--input", str(long_wav), "--max-seconds", "6"], broker.config_args(), tmp_path)
    assert d2.wait() == 0
    assert d2.lines == [] and "muted (persisted" in d2.log
    # without MQTT nothing could unmute it, so the persisted switch is not honoured
    d3 = Daemon(["--input", str(long_wav), "--fast", "--max-seconds", "6"], {"SER_STREAM_MQTT__ENABLED": "false"}, tmp_path)
    assert d3.wait() == 0 and len(d3.lines) == 4
    sub.close()


def test_reset_adaptation_button(broker, long_wav: Path, tmp_path: Path):
    sub = Subscriber(broker)
    d = Daemon(["--input", str(long_wav)], broker.config_args(), tmp_path)
    d.wait_lines(4)
    sub.publish(f"{BASE}/adaptation/reset", "PRESS")
    sub.wait_for(lambda: "adaptation statistics reset to the population's" in d.log)
    d.proc.send_signal(signal.SIGTERM)
    assert d.wait() == 0
    sub.close()


def test_broker_restart_mid_stream(broker, long_wav: Path, tmp_path: Path):
    sub = Subscriber(broker)
    d = Daemon(["--input", str(long_wav), "--max-seconds", "16"], broker.config_args(), tmp_path)
    d.wait_lines(3)
    before = len(sub.on(f"{BASE}/window"))
    assert before >= 2
    sub.close()
    broker.stop()
    time.sleep(4)  # stdout keeps flowing meanwhile
    broker.start()  # same port, empty: no retained messages survive (persistence false)
    sub2 = Subscriber(broker)
    sub2.wait_for(lambda: sub2.on(f"{BASE}/availability") and sub2.on(f"{BASE}/state"), timeout=30)
    assert d.wait() == 0, d.log
    assert [w["t"] for w in d.lines] == [float(t) for t in range(3, 17)]  # stdout: every hop, no gap
    confs = discovery(sub2)
    assert set(confs) == ENTITIES  # discovery re-published after the reconnect
    assert "disconnected" in d.log and d.log.count("MQTT: connected") >= 2
    after = len(sub2.on(f"{BASE}/window"))
    assert before + after >= 12  # per-hop messages queued during the outage were delivered
    final = json.loads(sub2.on(f"{BASE}/state")[-1][1])
    assert final["mood"] == d.lines[-1]["mood"]  # the last state reached the restarted broker
    print(f"broker restart: windows before {before}, after {after}, stdout lines {len(d.lines)}, "
          f"states after {len(sub2.on(f'{BASE}/state'))}")
    sub2.close()


def test_broker_down_at_start_and_wrong_password(broker_factory, long_wav: Path, tmp_path: Path):
    secure = broker_factory(users={"ser": "right-password"})
    d = Daemon(["--input", str(long_wav), "--fast", "--max-seconds", "8"],
               secure.config_args(SER_STREAM_MQTT__USERNAME="ser", SER_STREAM_MQTT__PASSWORD="wrong-secret-123"), tmp_path)
    assert d.wait() == 0
    assert len(d.lines) == 6  # classification and stdout went on
    assert "refused the connection" in d.log
    assert "wrong-secret-123" not in d.log
    # nobody listening at all: still streams
    d = Daemon(["--input", str(long_wav), "--fast", "--max-seconds", "5"],
               {"SER_STREAM_MQTT__ENABLED": "true", "SER_STREAM_MQTT__HOST": "127.0.0.1",
                "SER_STREAM_MQTT__PORT": "1"}, tmp_path)
    assert d.wait() == 0 and len(d.lines) == 3


def test_password_from_a_systemd_credential(broker_factory, long_wav: Path, tmp_path: Path):
    secure = broker_factory(users={"ser": "s3cret-credential"})
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt_password").write_text("s3cret-credential\n")
    sub = Subscriber(secure, username="ser", password="s3cret-credential")
    d = Daemon(["--input", str(long_wav), "--fast", "--max-seconds", "5"],
               secure.config_args(SER_STREAM_MQTT__USERNAME="ser", CREDENTIALS_DIRECTORY=str(creds)), tmp_path)
    assert d.wait() == 0
    sub.wait_for(lambda: len(sub.on(f"{BASE}/window")) == 3)
    assert "s3cret" not in d.log
    sub.close()


def test_tls_with_a_generated_certificate(broker_factory, long_wav: Path, tmp_path: Path):
    certs = tmp_path / "certs"
    certs.mkdir()

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=certs)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=ser-stream test CA",
        "-keyout", "ca.key", "-out", "ca.crt")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr")
    (certs / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
        "-extfile", "san.ext", "-out", "server.crt")
    tls_broker = broker_factory(tls={"ca": certs / "ca.crt", "cert": certs / "server.crt", "key": certs / "server.key"})
    sub = Subscriber(tls_broker, tls_ca=certs / "ca.crt")
    d = Daemon(["--input", str(long_wav), "--fast", "--max-seconds", "5"],
               tls_broker.config_args(SER_STREAM_MQTT__TLS__ENABLED="true",
                                      SER_STREAM_MQTT__TLS__CA_FILE=str(certs / "ca.crt")), tmp_path)
    assert d.wait() == 0, d.log
    sub.wait_for(lambda: len(sub.on(f"{BASE}/window")) == 3)
    assert "(TLS)" in d.log
    sub.close()


def test_two_rooms_on_one_broker_do_not_collide(broker, long_wav: Path, tmp_path: Path):
    sub = Subscriber(broker)
    rooms = []
    for room in ("kitchen", "bedroom"):
        rooms.append(Daemon(["--input", str(long_wav), "--max-seconds", "6"],
                            broker.config_args(SER_STREAM_MQTT__DEVICE_ID=room,
                                               SER_STREAM_STATE__DIRECTORY=str(tmp_path / room)), tmp_path))
    for d in rooms:
        assert d.wait() == 0
        assert "disconnected" not in d.log  # a shared client id would have kicked one out
    config_topics = {t for _, t, p, _ in sub.messages if t.startswith("homeassistant/") and p}
    assert len(config_topics) == 2 * len(ENTITIES)  # each room has its own node id in the topic
    configs = [json.loads(p) for _, t, p, _ in sub.messages if t.startswith("homeassistant/") and p]
    assert len({c["unique_id"] for c in configs}) == 2 * len(ENTITIES)
    assert len({json.dumps(c["device"]["identifiers"]) for c in configs}) == 2
    for room in ("kitchen", "bedroom"):
        assert len(sub.on(f"ser_stream/{room}/window")) == 4
        assert [p for _, p, _ in sub.on(f"ser_stream/{room}/availability")] == ["online", "offline"]
    sub.close()


def test_home_assistant_restart_resends_discovery_and_unregister_removes_it(broker, long_wav: Path, tmp_path: Path):
    sub = Subscriber(broker, topics=("homeassistant/#",))
    d = Daemon(["--input", str(long_wav), "--max-seconds", "8"], broker.config_args(), tmp_path)
    sub.wait_for(lambda: len(discovery(sub)) == len(ENTITIES))
    n = len(sub.messages)
    sub.publish("homeassistant/status", "online")  # what Home Assistant sends when it starts
    sub.wait_for(lambda: len([m for m in sub.messages[n:] if m[1].endswith("/config")]) >= len(ENTITIES))
    assert d.wait() == 0
    sub.close()

    from .conftest import cli

    watch = Subscriber(broker, topics=("homeassistant/#", f"{BASE}/#"))
    watch.wait_for(lambda: watch.on(f"{BASE}/state"))
    n = len(watch.messages)
    r = cli("mqtt-unregister", env={**broker.config_args(), "SER_STREAM_MQTT__DEVICE_ID": DEVICE})
    assert r.returncode == 0, r.stderr.decode()
    cleared = watch.wait_for(lambda: [m for m in watch.messages[n:] if m[2] == ""] if len(
        [m for m in watch.messages[n:] if m[2] == ""]) == len(ENTITIES) + 3 else None)
    last_config = max(t for t, tp, _, _ in cleared if tp.endswith("/config"))
    first_state = min(t for t, tp, _, _ in cleared if not tp.endswith("/config"))
    # the entities are gone (and have had time to unsubscribe) before their state topic is emptied
    assert first_state - last_config >= 0.9
    watch.close()
    late = Subscriber(broker, topics=("homeassistant/#", f"{BASE}/#"))
    time.sleep(1.0)
    assert late.messages == []  # every retained config and state was cleared
    late.close()


def test_adaptation_off_removes_the_reset_button(broker, long_wav: Path, tmp_path: Path):
    """A run with adaptation off leaves no button from an earlier run with it on."""
    button = f"homeassistant/button/ser_stream_{DEVICE}/reset_adaptation/config"
    Daemon(["--input", str(long_wav), "--max-seconds", "3"], broker.config_args(), tmp_path).wait()
    d = Daemon(["--input", str(long_wav), "--max-seconds", "3"],
               broker.config_args(SER_STREAM_ADAPTATION__ENABLED="false"), tmp_path)
    assert d.wait() == 0, d.log
    late = Subscriber(broker, topics=("homeassistant/#",))
    time.sleep(1.0)
    conf = discovery(late)
    assert set(conf) == ENTITIES - {("button", "reset_adaptation")}
    assert late.on(button) == []  # the retained config is gone from the broker
    late.close()


def test_publish_latency(broker, long_wav: Path, tmp_path: Path):
    """Hop end (the window's ts) to message received by a subscriber, on loopback."""
    from datetime import datetime

    sub = Subscriber(broker, topics=(f"{BASE}/window",))
    d = Daemon(["--input", str(long_wav), "--max-seconds", "10"], broker.config_args(), tmp_path)
    assert d.wait() == 0
    sub.wait_for(lambda: len(sub.on(f"{BASE}/window")) == 8)
    lat = [t - datetime.fromisoformat(json.loads(p)["ts"].replace("Z", "+00:00")).timestamp()
           for t, p, _ in sub.on(f"{BASE}/window")]
    print(f"publish latency ms: median {1000 * np.median(lat):.2f}, max {1000 * max(lat):.2f}")
    assert max(lat) < 1.0
    sub.close()


def test_entity_ids_of_a_device_id_home_assistant_would_rewrite():
    """A device id with capitals or "-" gives the entity ids Home Assistant derives from the names
    (lower case, "_"), so default_entity_id and the derived id agree; topics and unique ids keep it as it is."""
    from ser_stream.config import MqttConfig
    from ser_stream.sinks.mqtt import discovery_messages

    conf = discovery_messages(MqttConfig(device_id="Living-Room"), labels=LABELS, adaptation=True)
    ids = {c["default_entity_id"] for c in conf.values()}
    assert ids == {"sensor.ser_stream_living_room_mood", "sensor.ser_stream_living_room_confidence",
                   "sensor.ser_stream_living_room_arousal", "sensor.ser_stream_living_room_valence",
                   "binary_sensor.ser_stream_living_room_speech", "switch.ser_stream_living_room_mute",
                   "button.ser_stream_living_room_reset_adaptation"}
    assert all(c["unique_id"].startswith("ser_stream_Living-Room_") for c in conf.values())
    assert all(t.startswith("homeassistant/") and "/ser_stream_Living-Room/" in t for t in conf)
