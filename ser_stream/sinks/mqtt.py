"""MQTT sink (paho-mqtt 2.x) with Home Assistant discovery.

Topics (``base`` = ``<base_topic>/<device_id>``):
- ``{base}/availability`` retained ``online``/``offline`` (``offline`` is the last will)
- ``{base}/state`` retained, on every change
- ``{base}/window`` per hop (``publish_windows``), not retained
- ``{base}/event`` on each mood change, not retained
- ``{base}/mute`` retained ``ON``/``OFF``; ``{base}/mute/set`` subscribed
- ``{base}/adaptation/reset`` subscribed (with adaptation on): any payload resets the
  stream's adaptation statistics to the population's (a Home Assistant button)
- ``{prefix}/<component>/<node>/<object>/config`` retained discovery; re-sent
  when Home Assistant announces ``online`` on ``{prefix}/status``.

Threads: the pipeline thread calls ``publish_*``, which only append to
bounded in-memory queues and never touch the network. paho's network thread
(``loop_start``) connects, reconnects with capped exponential backoff and runs
the callbacks; a publisher thread owned by this sink moves queued messages to
paho while connected. Per-hop messages beyond ``queue_size`` drop the oldest
(counted); state and event messages are never dropped.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from .. import __version__
from ..config import ConfigError, MqttConfig
from ..mood import IDLE
from . import StateMessage, device_id_of, sanitize_id  # noqa: F401 - sanitize_id: part of this module's API

log = logging.getLogger(__name__)

CREDENTIAL_NAME = "mqtt_password"


def base_topic_of(cfg: MqttConfig) -> str:
    return f"{cfg.base_topic.rstrip('/')}/{device_id_of(cfg)}"


def read_password(cfg: MqttConfig) -> str | None:
    """The MQTT password: ``mqtt.password``, else ``password_file`` (relative names are
    looked up in ``$CREDENTIALS_DIRECTORY`` first), else the systemd credential
    ``mqtt_password``. Raises ConfigError naming the file (never the secret)."""
    if cfg.password is not None:
        return cfg.password.get_secret_value()
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    path: Path | None = None
    if cfg.password_file is not None:
        path = cfg.password_file
        if not path.is_absolute() and creds and (Path(creds) / path).is_file():
            path = Path(creds) / path
    elif creds and (Path(creds) / CREDENTIAL_NAME).is_file():
        path = Path(creds) / CREDENTIAL_NAME
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"mqtt.password_file: cannot read {path}: {exc.strerror}") from None


RESET_BUTTON = ("button", "reset_adaptation")


def entity_slug(text: str) -> str:
    """An entity id's object part as Home Assistant derives it from names: lower case, every run of
    other characters than a-z and 0-9 one "_" ("ser_stream_Living-Room_mood" -> "ser_stream_living_room_mood")."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


UNREGISTER_SETTLE_SECONDS = 1.0


def discovery_messages(cfg: MqttConfig, *, labels: tuple[str, ...],
                       adaptation: bool = False) -> dict[str, dict[str, Any] | None]:
    """Home Assistant discovery configs by topic: one device, six entities, seven with the adaptation
    reset button. Without adaptation the button's topic maps to None: its config is to be removed."""
    dev = device_id_of(cfg)
    base = base_topic_of(cfg)
    node = f"ser_stream_{dev}"
    prefix = cfg.homeassistant.prefix.rstrip("/")
    common = {
        "availability": [{"topic": f"{base}/availability"}],
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": {
            "identifiers": [node],
            "name": f"ser-stream {dev}",
            "model": "ser-stream speech emotion recognition",
            "manufacturer": "ser-stream",
            "sw_version": __version__,
        },
        "origin": {"name": "ser-stream", "sw_version": __version__},
    }
    state = f"{base}/state"
    entities = {
        ("sensor", "mood"): {
            "name": "Mood",
            "state_topic": state,
            "value_template": "{{ value_json.mood }}",
            "device_class": "enum",
            "options": [*labels, IDLE],
            "icon": "mdi:emoticon-outline",
            "json_attributes_topic": state,
            "json_attributes_template": (
                "{{ {'confidence': value_json.confidence, 'probabilities': value_json.probs, "
                "'arousal': value_json.arousal, 'valence': value_json.valence, 'since': value_json.since} | tojson }}"
            ),
        },
        ("sensor", "confidence"): {
            # named so that versions which ignore default_entity_id (before 2025.10) derive the same entity id
            "name": "Confidence",
            "state_topic": state,
            # null (idle, muted) renders "None", which Home Assistant shows as unknown
            "value_template": "{{ none if value_json.confidence is none else (value_json.confidence * 100) | round(1) }}",
            "unit_of_measurement": "%",
            "state_class": "measurement",
            "icon": "mdi:gauge",
        },
        ("sensor", "arousal"): {
            "name": "Arousal",
            "state_topic": state,
            # null (idle, muted) renders "None": Home Assistant shows unknown, never a made-up 0 (the boundary)
            "value_template": "{{ value_json.arousal }}",
            "state_class": "measurement",
            "icon": "mdi:lightning-bolt",
        },
        ("sensor", "valence"): {
            "name": "Valence",
            "state_topic": state,
            "value_template": "{{ value_json.valence }}",
            "state_class": "measurement",
            "icon": "mdi:emoticon-happy-outline",
        },
        ("binary_sensor", "speech"): {
            "name": "Speech",
            "state_topic": state,
            "value_template": "{{ 'ON' if value_json.speech else 'OFF' }}",
            "payload_on": "ON",
            "payload_off": "OFF",
            "device_class": "sound",
        },
        ("switch", "mute"): {
            "name": "Mute",
            "state_topic": f"{base}/mute",
            "command_topic": f"{base}/mute/set",
            "payload_on": "ON",
            "payload_off": "OFF",
            "state_on": "ON",
            "state_off": "OFF",
            "icon": "mdi:microphone-off",
        },
    }
    entities[RESET_BUTTON] = {
        "name": "Reset adaptation",
        "command_topic": f"{base}/adaptation/reset",
        "payload_press": "PRESS",
        "entity_category": "config",
        "icon": "mdi:restore",
    }
    out: dict[str, dict[str, Any] | None] = {}
    for (component, obj), conf in entities.items():
        topic = f"{prefix}/{component}/{node}/{obj}/config"
        if (component, obj) == RESET_BUTTON and not adaptation:
            out[topic] = None  # removed: a button left by an earlier run with adaptation on must not stay
            continue
        # Home Assistant 2025.10+ takes the entity id from default_entity_id; earlier versions derive it
        # from the device and entity names ("ser-stream <id>" + "Mood" -> sensor.ser_stream_<id>_mood): the same id
        out[topic] = {**conf, "unique_id": f"{node}_{obj}",
                      "default_entity_id": f"{component}.{entity_slug(f'{node}_{obj}')}", **common}
    return out


def make_client(cfg: MqttConfig, *, client_id: str) -> mqtt.Client:
    """A paho client with credentials and TLS from the config (not yet connected)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    password = read_password(cfg)
    if cfg.username is not None or password is not None:
        client.username_pw_set(cfg.username, password)
    if cfg.tls.enabled:
        try:
            client.tls_set(
                ca_certs=str(cfg.tls.ca_file) if cfg.tls.ca_file else None,
                certfile=str(cfg.tls.cert_file) if cfg.tls.cert_file else None,
                keyfile=str(cfg.tls.key_file) if cfg.tls.key_file else None,
            )
        except (OSError, ValueError) as exc:
            raise ConfigError(f"mqtt.tls: cannot load the CA/certificate/key: {exc}") from None
    return client


class MqttSink:
    """Publishes to an MQTT broker; see the module docstring. Owns its paho client and publisher thread."""

    name = "mqtt"

    def __init__(
        self,
        cfg: MqttConfig,
        *,
        labels: tuple[str, ...],
        on_mute: Callable[[bool], None],
        muted: bool,
        on_reset_adaptation: Callable[[], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.labels = labels
        self.on_mute = on_mute
        self.on_reset_adaptation = on_reset_adaptation
        self.base = base_topic_of(cfg)
        self.device_id = device_id_of(cfg)
        self.discovery = (discovery_messages(cfg, labels=labels, adaptation=on_reset_adaptation is not None)
                          if cfg.homeassistant.discovery else {})
        self.windows_dropped = 0
        self.published = 0
        self.states_queued = 0
        self._windows: deque[tuple[str, str]] = deque()
        self._priority: deque[tuple[str, str, bool]] = deque()  # state, events, mute, discovery: never dropped
        self._last_state: str | None = None
        self._online_pending = False  # ``online`` waits for the next state (see _announcements)
        self._muted = muted
        self._cond = threading.Condition()
        self._connected = threading.Event()
        self._closing = False
        self._auth_failed_logged = False
        self._down_logged = False

        client_id = cfg.client_id or f"ser-stream-{self.device_id}"
        self.client = make_client(cfg, client_id=client_id)
        self.client.will_set(f"{self.base}/availability", "offline", qos=1, retain=True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=cfg.reconnect_max_seconds)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive_seconds)
        self.client.loop_start()
        self._publisher = threading.Thread(target=self._publish_loop, name="mqtt-publisher", daemon=True)
        self._publisher.start()
        log.info("MQTT: broker %s:%d%s, topics %s/#, client id %s", cfg.host, cfg.port,
                 " (TLS)" if cfg.tls.enabled else "", self.base, client_id)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # ------------------------------------------------------------ paho thread
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            if not self._auth_failed_logged:
                self._auth_failed_logged = True
                log.error("MQTT: broker %s:%d refused the connection: %s (check mqtt.username and the password); "
                          "retrying with backoff", self.cfg.host, self.cfg.port, reason_code)
            return
        self._auth_failed_logged = self._down_logged = False
        log.info("MQTT: connected to %s:%d", self.cfg.host, self.cfg.port)
        topics = [(f"{self.base}/mute/set", 1), (f"{self.cfg.homeassistant.prefix}/status", 1)]
        if self.on_reset_adaptation is not None:
            topics.append((f"{self.base}/adaptation/reset", 1))
        client.subscribe(topics)
        # re-announce everything a late or restarted broker must know, ahead of queued messages; "online"
        # follows the newest state, queued or not (queued states are kept: none is ever dropped)
        with self._cond:
            state_topic = f"{self.base}/state"
            last = max((i for i, m in enumerate(self._priority) if m[0] == state_topic), default=None)
            msgs = self._announcements(queued_state=last is not None)
            self._priority.extendleft(reversed(msgs))
            if last is not None:
                self._priority.insert(len(msgs) + last + 1, (f"{self.base}/availability", "online", True))
            self._connected.set()
            self._cond.notify_all()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        self._connected.clear()
        if not self._closing and not self._down_logged:
            self._down_logged = True
            log.warning("MQTT: disconnected from %s:%d (%s); reconnecting with backoff up to %d s",
                        self.cfg.host, self.cfg.port, reason_code, self.cfg.reconnect_max_seconds)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        payload = msg.payload.decode("utf-8", "replace").strip()
        if msg.topic == f"{self.base}/mute/set":
            if payload.upper() in ("ON", "OFF"):
                self.on_mute(payload.upper() == "ON")
            else:
                log.warning("MQTT: ignoring %r on %s (expected ON or OFF)", payload[:40], msg.topic)
        elif msg.topic == f"{self.base}/adaptation/reset" and self.on_reset_adaptation is not None:
            self.on_reset_adaptation()
        elif msg.topic.endswith("/status") and payload == "online" and self.discovery:
            log.info("MQTT: Home Assistant is online; re-sending discovery")
            with self._cond:
                self._priority.extend(self._announcements())
                self._cond.notify_all()

    def _announcements(self, *, queued_state: bool = False) -> list[tuple[str, str, bool]]:
        """Discovery, mute, the current state, then ``online``: Home Assistant never shows an earlier
        run's retained state as this run's. Before the run's first state, ``online`` waits for it
        (publish_state); with a state still queued, the caller puts ``online`` after it."""
        msgs = [(t, "" if c is None else json.dumps(c), True) for t, c in self.discovery.items()]
        msgs.append((f"{self.base}/mute", "ON" if self._muted else "OFF", True))
        if self._last_state is None:
            self._online_pending = True
        elif not queued_state:
            msgs.append((f"{self.base}/state", self._last_state, True))
            msgs.append((f"{self.base}/availability", "online", True))
        return msgs

    # ------------------------------------------------------------ publisher thread
    def _publish_loop(self) -> None:
        while True:
            with self._cond:
                while not self._closing and not (self._connected.is_set() and (self._priority or self._windows)):
                    self._cond.wait(0.5)
                if self._closing:
                    return
                if self._priority:
                    topic, payload, retain = self._priority.popleft()
                    qos = 1
                else:
                    topic, payload = self._windows.popleft()
                    retain, qos = False, 0
                if not self._priority and not self._windows:
                    self._cond.notify_all()  # a close() waiting for the queues to drain
            info = self.client.publish(topic, payload, qos=qos, retain=retain)
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                self.published += 1
            elif qos == 1:
                # not sent (the connection just dropped): keep it for the next connection
                with self._cond:
                    self._priority.appendleft((topic, payload, retain))
                    self._connected.clear()
            else:
                self.windows_dropped += 1

    # ------------------------------------------------------------ pipeline thread
    def publish_window(self, message: dict[str, Any]) -> None:
        if not self.cfg.publish_windows:
            return
        with self._cond:
            if len(self._windows) >= self.cfg.queue_size:
                self._windows.popleft()
                self.windows_dropped += 1
                if self.windows_dropped in (1, 10, 100) or self.windows_dropped % 1000 == 0:
                    log.warning("MQTT: broker unreachable; %d per-hop messages dropped so far", self.windows_dropped)
            self._windows.append((f"{self.base}/window", json.dumps(message)))
            self._cond.notify_all()

    def publish_state(self, state: StateMessage) -> None:
        payload = json.dumps(state.to_dict())
        with self._cond:
            self._last_state = payload
            self.states_queued += 1
            self._priority.append((f"{self.base}/state", payload, True))
            if self._online_pending:
                self._online_pending = False
                self._priority.append((f"{self.base}/availability", "online", True))
            if state.muted != self._muted:
                self._muted = state.muted
                self._priority.append((f"{self.base}/mute", "ON" if state.muted else "OFF", True))
            self._cond.notify_all()

    def publish_event(self, event: dict[str, Any]) -> None:
        with self._cond:
            self._priority.append((f"{self.base}/event", json.dumps(event), False))
            self._cond.notify_all()

    def close(self, timeout: float = 3.0) -> None:
        """Deliver what is queued (waiting up to ``timeout`` s, also for a connection
        still being made), publish ``offline``, disconnect."""
        deadline = time.monotonic() + timeout
        with self._cond:  # woken by the publisher as it takes the last message, or by a connection
            self._cond.wait_for(lambda: self._connected.is_set() and not self._priority and not self._windows,
                                timeout=timeout)
            self._closing = True
            self._cond.notify_all()
        self._publisher.join(timeout=2)
        if self._connected.is_set():
            info = self.client.publish(f"{self.base}/availability", "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=max(0.1, deadline - time.monotonic()))
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()
        log.info("MQTT: %d state messages queued, %d messages published, %d still queued at exit", self.states_queued,
                 self.published, len(self._priority))
        if self.windows_dropped:
            log.warning("MQTT: %d per-hop messages were dropped while the broker was unreachable", self.windows_dropped)


def unregister(cfg: MqttConfig, *, labels: tuple[str, ...], timeout: float = 10.0,
               settle_seconds: float = UNREGISTER_SETTLE_SECONDS) -> int:
    """Remove this device from Home Assistant: empty retained discovery configs, then, ``settle_seconds``
    later, clear the retained state, mute and availability. Returns the topic count.
    Raises DeviceError (exit 69) when the broker cannot be reached or refuses us."""
    from ..errors import DeviceError

    client = make_client(cfg, client_id=f"ser-stream-{device_id_of(cfg)}-unregister")
    result: dict[str, Any] = {}
    done = threading.Event()

    def on_connect(c: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        result["rc"] = reason_code
        done.set()

    client.on_connect = on_connect
    try:
        client.connect(cfg.host, cfg.port, keepalive=cfg.keepalive_seconds)
    except OSError as exc:
        raise DeviceError(f"MQTT broker {cfg.host}:{cfg.port} unreachable: {exc}") from None
    client.loop_start()
    try:
        if not done.wait(timeout) or result["rc"].is_failure:
            raise DeviceError(f"MQTT broker {cfg.host}:{cfg.port} refused the connection: {result.get('rc', 'timeout')}")
        base = base_topic_of(cfg)
        configs = list(discovery_messages(cfg, labels=labels, adaptation=True))
        retained = [f"{base}/state", f"{base}/mute", f"{base}/availability"]
        # the configs first: an entity still subscribed when its state topic is emptied renders its
        # template on an empty payload (errors in Home Assistant's log); it has no acknowledgement
        # for a removal, so give it time to unsubscribe before the rest is cleared
        def clear(topics: list[str]) -> None:
            for info in [client.publish(t, b"", qos=1, retain=True) for t in topics]:
                info.wait_for_publish(timeout=timeout)

        clear(configs)
        time.sleep(settle_seconds)
        clear(retained)
        topics = configs + retained
        client.disconnect()
    finally:
        client.loop_stop()
    return len(topics)
