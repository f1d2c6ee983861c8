"""Prometheus metrics for the people who run the daemon (``metrics.enabled``; imported only then).

An HTTP endpoint from the ``prometheus_client`` library, bound to ``metrics.host`` (127.0.0.1 by
default) and ``metrics.port``, serving the text format on any path (``/metrics``). Per hop it counts
windows and speech windows and keeps the current mood, confidence, arousal and valence; the service
reports each hop's processing time; the ring buffer's overflows, the capture restarts and the MQTT
connection are read when scraped. The model's checksum and version are an info metric.
Owns its registry and the HTTP server thread.
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram, Info, start_http_server

from ..config import MetricsConfig
from ..errors import DeviceError
from ..mood import IDLE
from ..sinks import StateMessage

log = logging.getLogger(__name__)

HOP_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)


class MetricsSink:
    """A sink that keeps Prometheus metrics and serves them over HTTP."""

    name = "metrics"

    def __init__(self, cfg: MetricsConfig, *, labels: tuple[str, ...], model_sha256: str | None, model_path: str,
                 version: str, mqtt: Any | None = None) -> None:
        """``mqtt``: the MQTT sink whose connection and drops are reported (None: MQTT is off)."""
        self.registry = r = CollectorRegistry()
        self.windows = Counter("ser_stream_windows", "Windows analysed (one per hop)", registry=r)
        self.speech = Counter("ser_stream_speech_windows", "Windows the speech gate passed", registry=r)
        self.hop_seconds = Histogram("ser_stream_hop_processing_seconds", "CPU wall time to analyse one hop",
                                     buckets=HOP_BUCKETS, registry=r)
        self.mood = Enum("ser_stream_mood", "The current mood", states=[*labels, IDLE], registry=r)
        self.confidence = Gauge("ser_stream_mood_confidence", "Smoothed probability of the current mood", registry=r)
        self.arousal = Gauge("ser_stream_arousal", "Smoothed arousal, [-1, 1], > 0 agitated (NaN: idle)", registry=r)
        self.valence = Gauge("ser_stream_valence", "Smoothed valence, [-1, 1], > 0 positive (NaN: idle)", registry=r)
        self.overflow = Gauge("ser_stream_ring_overflow_samples", "Samples lost to ring-buffer overflow", registry=r)
        self.restarts = Gauge("ser_stream_capture_restarts", "Times the capture device was reopened", registry=r)
        self.mqtt_connected = Gauge("ser_stream_mqtt_connected", "1 while connected to the MQTT broker", registry=r)
        self.mqtt_dropped = Gauge("ser_stream_mqtt_dropped_windows", "Per-hop MQTT messages dropped", registry=r)
        if mqtt is not None:  # read at scrape time from the sink that owns them
            self.mqtt_connected.set_function(lambda: float(mqtt.connected))
            self.mqtt_dropped.set_function(lambda: mqtt.windows_dropped)
        Info("ser_stream_model", "The loaded model", registry=r).info(
            {"sha256": model_sha256 or "", "path": model_path, "version": version})
        self.mood.state(IDLE)
        for g in (self.arousal, self.valence, self.confidence):
            g.set(float("nan"))
        try:
            self._server, self._thread = start_http_server(cfg.port, addr=cfg.host, registry=r)
        except OSError as exc:
            raise DeviceError(f"metrics: cannot listen on {cfg.host}:{cfg.port}: {exc.strerror} (metrics.port)") from None
        log.info("metrics: Prometheus endpoint on http://%s:%d/metrics", cfg.host, cfg.port)

    def bind(self, *, ring: Any, source: Any) -> None:
        """Values read at scrape time from the objects that own them (plain attribute reads)."""
        self.overflow.set_function(lambda: ring.overflow_samples)
        self.restarts.set_function(lambda: getattr(source, "restarts", 0))

    def observe_hop(self, seconds: float) -> None:
        self.hop_seconds.observe(seconds)

    # ------------------------------------------------------------ the sink interface
    def publish_window(self, message: dict[str, Any]) -> None:
        self.windows.inc()
        if message["speech"]:
            self.speech.inc()

    def publish_state(self, state: StateMessage) -> None:
        self.mood.state(state.mood)
        nan = float("nan")
        self.confidence.set(nan if state.confidence is None else state.confidence)
        self.arousal.set(nan if state.arousal is None else state.arousal)
        self.valence.set(nan if state.valence is None else state.valence)

    def publish_event(self, event: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
