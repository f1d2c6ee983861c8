"""The running daemon: capture -> ring buffer -> analyzer -> mood -> sinks.

Threads: the source's (microphone, network or file reader) writes the ring
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
from pathlib import Path
from datetime import datetime, timezone
from typing import Protocol

import numpy as np

from .adaptation import Prior
from .capture.resample import Resampler
from .config import Config
from .model import Model
from .mood import MoodState, MoodTracker
from .moodstep import MoodStep
from .pipeline import WindowResult, make_analyzer
from .ringbuffer import RingBuffer
from .sinks import SafeSinks, StateMessage, iso_utc, window_message
from .voices import Household

log = logging.getLogger(__name__)


class Source(Protocol):
    name: str
    sample_rate_hz: int
    block_frames: int  # samples per block the source writes
    error: Exception | None
    healthy: bool  # False: capture has been dead past its budget (stop feeding the watchdog)
    state: str  # one line for STATUS=

    def start(self, ring: RingBuffer, stop: threading.Event) -> None: ...

    def poll(self) -> None: ...

    def stop(self) -> None: ...


class RunMetrics(Protocol):
    """What the loop tells a metrics sink beyond the sink interface (sinks.metrics.MetricsSink)."""

    def bind(self, *, ring: RingBuffer, source: Source) -> None: ...

    def observe_hop(self, seconds: float) -> None: ...


class Notifier:
    """sd_notify: a datagram to ``$NOTIFY_SOCKET``; a no-op outside systemd."""

    def __init__(self) -> None:
        addr = os.environ.get("NOTIFY_SOCKET")
        self._addr = ("\0" + addr[1:]) if addr and addr.startswith("@") else addr
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) if self._addr else None
        usec = os.environ.get("WATCHDOG_USEC")
        self.watchdog_seconds = int(usec) / 1e6 if usec and usec.isdigit() else None
        self._last_ping = 0.0
        self._status = ""
        self._ready = False

    def send(self, *lines: str) -> None:
        if self._sock is None:
            return
        try:
            self._sock.sendto("\n".join(lines).encode(), self._addr)
        except OSError as exc:
            log.debug("sd_notify failed: %s", exc)

    def ready(self, line: str) -> None:
        """READY=1 with the first STATUS= line (once: later calls only update the status)."""
        if self._ready:
            self.status(line)
            return
        self._ready = True
        self._status = line
        self.send("READY=1", f"STATUS={line}")

    def status(self, line: str) -> None:
        """STATUS=line, sent only when it changes."""
        if line != self._status:
            self._status = line
            self.send(f"STATUS={line}")

    def watchdog(self) -> None:
        if self.watchdog_seconds and time.monotonic() - self._last_ping >= self.watchdog_seconds / 3:
            self._last_ping = time.monotonic()
            self.send("WATCHDOG=1")


class Controls:
    """Switches that other threads (the MQTT client) flip and the pipeline reads.

    Owned by the service. ``muted`` survives restarts in ``state_dir/mute``.
    """

    def __init__(self, *, state_dir: Path | None) -> None:
        self._reset_adaptation = threading.Event()
        self._muted = threading.Event()
        self._file = None if state_dir is None else state_dir / "mute"
        if self._file is not None and self._file.is_file():
            try:
                if self._file.read_text().strip().upper() == "ON":
                    self._muted.set()
                    log.info("muted (persisted in %s)", self._file)
            except OSError as exc:
                log.warning("cannot read %s: %s", self._file, exc)

    @property
    def muted(self) -> bool:
        return self._muted.is_set()

    def set_muted(self, on: bool) -> None:
        if on == self.muted:
            return
        (self._muted.set if on else self._muted.clear)()
        log.info("listening %s", "muted: no audio is analysed" if on else "resumed")
        if self._file is not None:
            try:
                self._file.parent.mkdir(parents=True, exist_ok=True)
                tmp = self._file.with_suffix(".tmp")
                tmp.write_text("ON\n" if on else "OFF\n")
                tmp.replace(self._file)
            except OSError as exc:
                log.warning("cannot persist the mute switch in %s: %s", self._file, exc)

    def request_adaptation_reset(self) -> None:
        """Ask the pipeline to forget the stream's adaptation statistics (from any thread)."""
        log.info("adaptation reset requested")
        self._reset_adaptation.set()

    def take_adaptation_reset(self) -> bool:
        """True once per request (the pipeline thread)."""
        if self._reset_adaptation.is_set():
            self._reset_adaptation.clear()
            return True
        return False


ADAPTATION_FILE = "adaptation.npz"
SAVE_EVERY_WINDOWS = 60  # speech windows between saves of the adaptation statistics


def prior_key(prior: Prior) -> str:
    """Identifies the adaptive head the saved statistics belong to, by its population prior."""
    import hashlib

    return hashlib.sha256(prior.mean.tobytes() + prior.var.tobytes()).hexdigest()[:16]


class AdaptationStore:
    """The adaptation statistics in ``directory/adaptation.npz`` (``directory`` None: kept in memory
    only), with the model and the source they were learnt for. Written atomically; a file from
    another model or another source (a different microphone or camera: another room's acoustics),
    or an unreadable one, is set aside with a log line and the statistics start from the population.
    Owned by the service thread."""

    def __init__(self, directory: Path | None, *, key: str, source: str = "") -> None:
        self.path = None if directory is None else directory / ADAPTATION_FILE
        self.key = key
        self.source = source
        self._unsaved = 0

    def load(self, stats: Household) -> None:
        if self.path is None or not self.path.is_file():
            return
        try:
            with np.load(self.path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
            if str(arrays.get("model_key", "")) != self.key:
                log.info("%s holds statistics of another model: adaptation starts from the population", self.path)
                return
            if "source" in arrays and str(arrays["source"]) != self.source:
                log.info("%s holds statistics of another source (%s): adaptation starts from the population",
                         self.path, arrays["source"])
                return
            restored = stats.load_arrays(arrays)
            log.info("adaptation: %s restored from %s", restored, self.path)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("cannot use %s (%s): adaptation starts from the population", self.path, exc)

    def note_update(self, stats: Household) -> None:
        """Called after each speech window; saves every SAVE_EVERY_WINDOWS of them."""
        self._unsaved += 1
        if self._unsaved >= SAVE_EVERY_WINDOWS:
            self.save(stats)

    def save(self, stats: Household) -> None:
        """Write the statistics atomically, readable by this user alone (they describe the voices of a home)."""
        self._unsaved = 0
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp.npz")
            with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
                np.savez(f, model_key=np.array(self.key), source=np.array(self.source), **stats.to_arrays())
            os.chmod(tmp, 0o600)  # a file left by an older release may have had wider rights
            tmp.replace(self.path)
        except OSError as exc:
            log.warning("cannot save the adaptation statistics in %s: %s", self.path, exc)


def default_state_dir(room: str) -> Path:
    """$STATE_DIRECTORY (systemd StateDirectory=, one per unit instance), else a folder per ``room``
    (the MQTT device id) in the XDG state home: two daemons of one user never share a mute switch or
    adaptation statistics."""
    env = os.environ.get("STATE_DIRECTORY")
    if env:
        return Path(env.split(":")[0])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ser-stream" / room


def state_dir_of(config: Config) -> Path:
    """The room's state folder: ``state.directory``, else :func:`default_state_dir` of its device id."""
    from .sinks import device_id_of

    return config.state.directory or default_state_dir(device_id_of(config.mqtt))


def persistence(config: Config, model: Model, *, live: bool) -> tuple[Controls, Path | None]:
    """What survives a restart, by the daemon's rules: the controls (the mute switch is set over MQTT,
    so it is kept and honoured with MQTT on only: a persisted mute must never silence a daemon that
    has no way to unmute it) and the folder of the adaptation statistics (kept for live sources only,
    with adaptation on and ``adaptation.persist``: a test file must not become the household's)."""
    from .moodstep import adapts

    state_dir = state_dir_of(config)
    controls = Controls(state_dir=state_dir if config.mqtt.enabled else None)
    keep = adapts(config, model) and config.adaptation.persist and live
    return controls, state_dir if keep else None


@dataclass
class RunStats:
    windows: int = 0
    speech_windows: int = 0
    overflow_samples: int = 0
    seconds: float = 0.0


def state_message(tracker: MoodTracker, *, speech: bool, muted: bool, since: str) -> StateMessage:
    probs = tracker.probs
    return StateMessage(
        mood=tracker.mood,
        confidence=None if muted else tracker.mood_confidence(),
        speech=speech,
        muted=muted,
        since=since,
        arousal=tracker.arousal,
        valence=tracker.valence,
        probs=None if probs is None else {lab: float(p) for lab, p in zip(tracker.labels, probs)},
    )


def announce_waiting(sinks: SafeSinks, *, model: Model, config: Config, muted: bool) -> None:
    """Before a late source comes (a camera still booting): the state a run starts with (nothing heard,
    the calm mood), so that MQTT announces the room ``online`` with its entities while the daemon
    waits; the run's own state follows once the source is there."""
    from .moodstep import make_tracker

    tracker = make_tracker(config, model)
    sinks.state(state_message(tracker, speech=False, muted=muted, since=iso_utc(datetime.now(timezone.utc))))


class Publisher:
    """What the run tells the sinks: each window, each mood change as an event, and the retained state
    whenever one of its values changes. Owned by the pipeline thread."""

    def __init__(self, sinks: SafeSinks, *, tracker: MoodTracker, labels: tuple[str, ...], source_name: str) -> None:
        self.sinks = sinks
        self.tracker = tracker
        self.labels = labels
        self.source_name = source_name
        self.since = iso_utc(datetime.now(timezone.utc))  # when the mood began
        self.speech = False
        self.muted = False
        self._last_state: dict | None = None

    def state(self) -> None:
        """Send the state if any value but ``since`` changed since the last one sent."""
        state = state_message(self.tracker, speech=self.speech, muted=self.muted, since=self.since)
        key = {k: v for k, v in state.to_dict().items() if k != "since"}
        if key != self._last_state:
            self._last_state = key
            self.sinks.state(state)

    def window(self, res: WindowResult, mood: MoodState, previous: str, *, window_seconds: float) -> None:
        """One scored window, the mood after it and the mood before it."""
        now = datetime.now(timezone.utc)
        self.speech = res.speech
        if res.padded:
            log.warning("%s is shorter than one window (%.2f s < %.2f s): classified once, zero-padded",
                        self.source_name, res.t, window_seconds)
        self.sinks.window(window_message(res, mood=mood, labels=self.labels, ts=now))
        if mood.changed:
            self.since = iso_utc(now)
            log.info("mood: %s (confidence %.2f) at t=%.1f s", mood.mood, mood.confidence or 0.0, res.t)
            self.sinks.event({"ts": self.since, "t": round(res.t, 3), "mood": mood.mood, "previous": previous,
                              "confidence": None if mood.confidence is None else round(mood.confidence, 3)})
        self.state()

    def mood_reset(self) -> None:
        """The mood was forgotten (mute): it began now."""
        self.since = iso_utc(datetime.now(timezone.utc))


class KeptAdaptation:
    """The stream's adaptation statistics and their file: restored at start, saved every
    SAVE_EVERY_WINDOWS speech windows and at the end, reset on request. A no-op without adaptation.
    Owned by the pipeline thread."""

    def __init__(self, adapter: Household | None, directory: Path | None, *, source: str) -> None:
        self.adapter = adapter
        self.store = None if adapter is None else AdaptationStore(directory, key=prior_key(adapter.prior), source=source)
        if self.store is not None:
            self.store.load(adapter)

    def heard(self, res: WindowResult) -> None:
        if self.store is not None and res.probs is not None:
            self.store.note_update(self.adapter)

    def reset(self) -> None:
        if self.store is not None:
            self.adapter.reset()
            self.store.save(self.adapter)
            log.info("adaptation statistics reset to the population's")

    def save(self) -> None:
        if self.store is not None:
            self.store.save(self.adapter)


def run_stream(
    *,
    config: Config,
    model: Model,
    source: Source,
    sinks: SafeSinks,
    stop: threading.Event,
    controls: Controls | None = None,
    max_seconds: float | None = None,
    adaptation_dir: Path | None = None,
    metrics: RunMetrics | None = None,
    notifier: Notifier | None = None,
) -> RunStats:
    """Stream ``source`` until it ends, ``stop`` is set, or ``max_seconds`` of audio went by.

    While ``controls.muted``, audio is read and discarded unanalysed. The state
    is sent to the sinks whenever any of its values changes, mood changes also
    as events. Raises the source's error (e.g. truncated audio) after emitting
    everything before it.
    """
    controls = controls or Controls(state_dir=None)
    notifier = notifier or Notifier()
    ring = RingBuffer(int(source.sample_rate_hz * config.audio.buffer_seconds))
    resampler = Resampler(source.sample_rate_hz, model.sample_rate_hz)
    mood_step = MoodStep(model, config)
    kept = KeptAdaptation(mood_step.adapter, adaptation_dir, source=source.name)
    if mood_step.adapter is None and config.adaptation.enabled:
        log.info("the model has no adaptive head: adaptation is off")
    analyzer = make_analyzer(config, None, fdef=model.features)
    window_seconds = analyzer.window_samples / analyzer.sample_rate_hz
    if metrics is not None:  # a MetricsSink (already among the sinks): live values and per-hop times
        metrics.bind(ring=ring, source=source)
    stats = RunStats()
    out = Publisher(sinks, tracker=mood_step.tracker, labels=model.labels, source_name=source.name)
    out.muted = muted = controls.muted

    def judge(results: list[WindowResult]) -> list[tuple[WindowResult, MoodState, str]]:
        """Each window scored, with the mood after it and the mood before it."""
        judged = []
        for res in results:
            previous = mood_step.tracker.mood
            judged.append((*mood_step.step(res, hop_seconds=analyzer.hop_seconds), previous))
        return judged

    def emit(judged: list[tuple[WindowResult, MoodState, str]]) -> None:
        for res, mood, previous in judged:
            stats.windows += 1
            stats.speech_windows += int(res.speech)
            out.window(res, mood, previous, window_seconds=window_seconds)
            kept.heard(res)

    out.state()
    # read at least 0.1 s at a time, and whole source blocks (0.5 s with --fast)
    block = np.empty(max(source.sample_rate_hz // 10, source.block_frames), dtype=np.float32)
    limit = None if max_seconds is None else int(round(max_seconds * source.sample_rate_hz))
    consumed = 0  # source samples read from the ring, muted or not
    source.start(ring, stop)
    notifier.ready(source.state)
    try:
        while not stop.is_set():
            n = ring.read(block, stop)
            source.poll()
            if source.healthy:
                notifier.watchdog()
            notifier.status(source.state if not muted else "muted")
            if controls.take_adaptation_reset():
                kept.reset()
            if controls.muted != muted:
                out.muted = muted = controls.muted
                t_now = consumed / source.sample_rate_hz
                if muted:
                    if mood_step.reset_mood(t=t_now):
                        out.mood_reset()
                    out.speech = False
                else:
                    analyzer.reset(t0=t_now)
                    resampler = Resampler(source.sample_rate_hz, model.sample_rate_hz)
                out.state()
            if n == 0:
                if ring.finished:
                    break
                continue
            if limit is not None:
                n = min(n, limit - consumed)
            consumed += n
            if not muted:
                t0 = time.perf_counter()
                results = judge(analyzer.push(resampler.process(block[:n])))
                if metrics is not None and results:
                    per_hop = (time.perf_counter() - t0) / len(results)
                    for _ in results:
                        metrics.observe_hop(per_hop)
                emit(results)
            if limit is not None and consumed >= limit:
                break
        if not stop.is_set() and not muted:  # end of input or --max-seconds: drain the resampler
            emit(judge(analyzer.push(resampler.flush())))
            short = analyzer.flush_short()
            if short is not None:
                emit(judge([short]))
    finally:
        notifier.send("STOPPING=1")
        source.stop()  # capture first ...
        stats.overflow_samples = ring.overflow_samples
        stats.seconds = consumed / source.sample_rate_hz
        if analyzer.damaged_samples:
            log.warning("%s: %d non-finite or out-of-range samples were replaced by silence or clipped",
                        source.name, analyzer.damaged_samples)
        if ring.overflow_samples:
            log.warning("ring buffer overflow: %d samples lost in %d events", ring.overflow_samples, ring.overflow_events)
        kept.save()
        sinks.close()  # ... sinks last
    if source.error is not None:
        raise source.error
    return stats
