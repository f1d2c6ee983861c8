"""The running daemon: capture -> ring buffer -> analyzer -> mood -> sinks.

Threads: the source's (PortAudio callback or file reader) writes the ring
buffer; this module's loop, on the calling thread, does everything else. The
one stop :class:`threading.Event` is set by SIGTERM/SIGINT (or a closed stdout
pipe); shutdown order is capture -> pipeline -> sinks.
Also speaks systemd's sd_notify protocol (READY, STATUS, WATCHDOG, STOPPING)
when ``$NOTIFY_SOCKET`` is set.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol

import numpy as np

from .capture.resample import Resampler
from .config import Config
from .model import Model
from .mood import MoodTracker
from .pipeline import Analyzer, WindowResult
from .ringbuffer import RingBuffer
from .sinks import SafeSinks, StateMessage, iso_utc, window_message

log = logging.getLogger(__name__)


class Source(Protocol):
    name: str
    sample_rate_hz: int
    error: Exception | None

    def start(self, ring: RingBuffer, stop: threading.Event) -> None: ...

    def poll(self) -> None: ...

    def stop(self) -> None: ...


class Notifier:
    """sd_notify: a datagram to ``$NOTIFY_SOCKET``; a no-op outside systemd."""

    def __init__(self) -> None:
        addr = os.environ.get("NOTIFY_SOCKET")
        self._addr = ("\0" + addr[1:]) if addr and addr.startswith("@") else addr
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) if self._addr else None
        usec = os.environ.get("WATCHDOG_USEC")
        self.watchdog_seconds = int(usec) / 1e6 if usec and usec.isdigit() else None
        self._last_ping = 0.0

    def send(self, *lines: str) -> None:
        if self._sock is None:
            return
        try:
            self._sock.sendto("\n".join(lines).encode(), self._addr)
        except OSError as exc:
            log.debug("sd_notify failed: %s", exc)

    def watchdog(self) -> None:
        if self.watchdog_seconds and time.monotonic() - self._last_ping >= self.watchdog_seconds / 3:
            self._last_ping = time.monotonic()
            self.send("WATCHDOG=1")


@dataclass
class RunStats:
    windows: int = 0
    speech_windows: int = 0
    overflow_samples: int = 0
    seconds: float = 0.0


def make_analyzer(config: Config, model: Model, *, keep_vectors: bool = False) -> Analyzer:
    return Analyzer(
        fdef=model.features,
        model=model,
        window_seconds=config.window.length_seconds,
        hop_seconds=config.window.hop_seconds,
        vad_enabled=config.vad.enabled,
        vad_threshold_dbfs=config.vad.threshold_dbfs,
        vad_noise_margin_db=config.vad.noise_margin_db,
        vad_min_active_seconds=config.vad.min_active_seconds,
        keep_vectors=keep_vectors,
    )


def run_stream(
    *,
    config: Config,
    model: Model,
    source: Source,
    sinks: SafeSinks,
    stop: threading.Event,
    max_seconds: float | None = None,
) -> RunStats:
    """Stream ``source`` until it ends, ``stop`` is set, or ``max_seconds`` of audio went by.

    Raises the source's error (e.g. truncated audio) after emitting everything before it.
    """
    notifier = Notifier()
    ring = RingBuffer(int(source.sample_rate_hz * config.audio.buffer_seconds))
    resampler = Resampler(source.sample_rate_hz, model.sample_rate_hz)
    analyzer = make_analyzer(config, model)
    tracker = MoodTracker(
        labels=model.labels,
        min_confidence=config.mood.min_confidence,
        min_dwell_seconds=config.mood.min_dwell_seconds,
        smoothing_seconds=config.mood.smoothing_seconds,
        idle_after_seconds=config.mood.idle_after_seconds,
    )
    stats = RunStats()
    started = datetime.now(timezone.utc)
    sinks.state(StateMessage(tracker.mood, None, False, False, iso_utc(started)))

    def emit(res: WindowResult) -> None:
        now = datetime.now(timezone.utc)
        state = tracker.update(t=res.t, hop_seconds=analyzer.hop_seconds, probs=res.probs)
        stats.windows += 1
        stats.speech_windows += int(res.speech)
        if res.padded:
            log.warning("%s is shorter than one window (%.2f s < %.2f s): classified once, zero-padded",
                        source.name, res.t, analyzer.window_samples / analyzer.sample_rate_hz)
        sinks.window(window_message(res, mood=state, labels=model.labels, ts=now))
        if state.changed:
            log.info("mood: %s (confidence %.2f) at t=%.1f s", state.mood, state.confidence or 0.0, res.t)
            sinks.state(StateMessage(state.mood, state.confidence, res.speech, False, iso_utc(now)))

    block = np.empty(max(1, source.sample_rate_hz // 10), dtype=np.float32)
    limit = None if max_seconds is None else int(max_seconds * model.sample_rate_hz)
    source.start(ring, stop)
    notifier.send("READY=1", f"STATUS=listening on {source.name}")
    try:
        while not stop.is_set():
            n = ring.read(block, stop)
            source.poll()
            notifier.watchdog()
            if n == 0:
                if ring.finished:
                    break
                continue
            samples = resampler.process(block[:n])
            if limit is not None:
                samples = samples[: max(0, limit - analyzer.samples_seen)]
            for res in analyzer.push(samples):
                emit(res)
            if limit is not None and analyzer.samples_seen >= limit:
                break
        if not stop.is_set() and (limit is None or analyzer.samples_seen < limit):
            for res in analyzer.push(resampler.flush()):
                emit(res)
            short = analyzer.flush_short()
            if short is not None:
                emit(short)
    finally:
        notifier.send("STOPPING=1")
        source.stop()  # capture first ...
        stats.overflow_samples = ring.overflow_samples
        stats.seconds = analyzer.samples_seen / analyzer.sample_rate_hz
        if ring.overflow_samples:
            log.warning("ring buffer overflow: %d samples lost in %d events", ring.overflow_samples, ring.overflow_events)
        sinks.close()  # ... sinks last
    if source.error is not None:
        raise source.error
    return stats
