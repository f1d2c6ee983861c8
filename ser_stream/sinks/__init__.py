"""Output sinks. The core only knows this small interface; it never imports paho.

A sink receives, per hop, the contract's window message (a JSON-ready dict),
and the mood state whenever it changes. A sink that raises is logged (once per
failure streak) and called again next time; it never stops inference.
"""

from __future__ import annotations

import logging
import re
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from ..config import MqttConfig
from ..mood import MoodState
from ..pipeline import WindowResult, probs_json

log = logging.getLogger(__name__)


def sanitize_id(text: str) -> str:
    """A topic- and unique_id-safe identifier: letters, digits, '_' and '-'."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "ser_stream"


def device_id_of(cfg: MqttConfig) -> str:
    """The room's identity: ``mqtt.device_id``, else the hostname (MQTT topics, Home Assistant's device,
    and the folder of the room's state)."""
    return sanitize_id(cfg.device_id or socket.gethostname())


def iso_utc(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def window_message(res: WindowResult, *, mood: MoodState, labels: tuple[str, ...], ts: datetime) -> dict[str, Any]:
    """The per-hop JSON object of docs/contracts.md."""
    return {
        "ts": iso_utc(ts),
        "t": round(res.t, 3),
        "speech": res.speech,
        "label": res.label,
        "confidence": None if res.confidence is None else round(res.confidence, 4),
        "probs": probs_json(res.probs, labels),
        "mood": mood.mood,
        "level_dbfs": round(res.level_dbfs, 1),
        "arousal": None if res.arousal is None else round(res.arousal, 3),
        "valence": None if res.valence is None else round(res.valence, 3),
    }


@dataclass(frozen=True)
class StateMessage:
    """The retained mood state (docs/contracts.md ``{base}/state``), plus arousal/valence and smoothed probabilities."""

    mood: str
    confidence: float | None
    speech: bool
    muted: bool
    since: str  # ISO UTC time the mood began
    arousal: float | None = None
    valence: float | None = None
    probs: dict[str, float] | None = None  # the smoothed probabilities behind the mood

    def to_dict(self) -> dict[str, Any]:
        return {
            "mood": self.mood,
            "confidence": None if self.confidence is None else round(self.confidence, 3),
            "speech": self.speech,
            "muted": self.muted,
            "since": self.since,
            "arousal": None if self.arousal is None else round(self.arousal, 3),
            "valence": None if self.valence is None else round(self.valence, 3),
            "probs": None if self.probs is None else {k: round(v, 3) for k, v in self.probs.items()},
        }


class Sink(Protocol):
    name: str

    def publish_window(self, message: dict[str, Any]) -> None: ...

    def publish_state(self, state: StateMessage) -> None: ...

    def publish_event(self, event: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class SafeSinks:
    """Fans messages out to sinks; a failing sink is logged and retried on the next message.

    Owned by the pipeline thread.
    """

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = sinks
        self._failing: set[str] = set()
        self.failures = 0

    def _call(self, sink: Sink, method: str, arg: Any) -> None:
        try:
            getattr(sink, method)(arg)
        except Exception as exc:  # noqa: BLE001 - a sink must never stop inference
            self.failures += 1
            if sink.name not in self._failing:
                self._failing.add(sink.name)
                log.error("sink %s failed (%s: %s); will keep trying", sink.name, type(exc).__name__, exc)
            return
        if sink.name in self._failing:
            self._failing.discard(sink.name)
            log.info("sink %s recovered", sink.name)

    def window(self, message: dict[str, Any]) -> None:
        for s in self.sinks:
            self._call(s, "publish_window", message)

    def state(self, state: StateMessage) -> None:
        for s in self.sinks:
            self._call(s, "publish_state", state)

    def event(self, event: dict[str, Any]) -> None:
        for s in self.sinks:
            self._call(s, "publish_event", event)

    def close(self) -> None:
        for s in self.sinks:
            try:
                s.close()
            except Exception:  # noqa: BLE001
                log.exception("closing sink %s failed", s.name)
