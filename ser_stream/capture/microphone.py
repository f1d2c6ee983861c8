"""Microphone input through sounddevice (PortAudio).

The device is opened at its native rate (resampling happens in the pipeline),
so a 48 kHz microphone is never misread as 16 kHz. The stream is opened in
PortAudio's *blocking* mode, without a callback: the capture thread reads what
the device has buffered (never waiting inside PortAudio), writes it to the ring
buffer and counts samples and overflows. No callback means no
write-and-execute memory for a cffi trampoline, so the service runs under
systemd's ``MemoryDenyWriteExecute=yes`` (measured: a cffi callback fails
under ``PR_SET_MDWE``), and no PortAudio realtime thread.

If the stream dies (a USB microphone unplugged), or stays open but delivers
nothing for ``stall_seconds`` (a hung USB device, a suspended PipeWire or
PulseAudio node), :meth:`MicrophoneSource.poll` closes it, re-initialises
PortAudio (so a device that came back under another index is found again by
name) and reopens it with backoff. :attr:`MicrophoneSource.healthy` turns false
once capture has been dead for longer than ``watchdog_budget_seconds``: the
service then stops feeding the systemd watchdog, and systemd restarts it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

import numpy as np

from ..errors import DeviceError, SourceAbsentError
from ..ringbuffer import RingBuffer
from .liveness import Liveness

log = logging.getLogger(__name__)

HINT = "use --input FILE to stream a file, or pick a device from `ser-stream devices` (audio.device / --device)"


def _sd() -> Any:
    try:
        import sounddevice as sd
    except OSError as exc:  # PortAudio library missing
        raise DeviceError(f"cannot load PortAudio ({exc}); install libportaudio2, or {HINT}") from None
    return sd


def list_input_devices() -> list[dict[str, Any]]:
    """Input-capable devices: index, name, host API, channels, native rate, default flag."""
    sd = _sd()
    try:
        devices = sd.query_devices()
        default_in = sd.default.device[0]
        apis = sd.query_hostapis()
    except sd.PortAudioError as exc:
        raise DeviceError(f"cannot list audio devices: {exc}") from None
    out = []
    for d in devices:
        if d["max_input_channels"] > 0:
            out.append(
                {
                    "index": d["index"],
                    "name": d["name"],
                    "hostapi": apis[d["hostapi"]]["name"],
                    "channels": d["max_input_channels"],
                    "sample_rate_hz": int(d["default_samplerate"]),
                    "default": d["index"] == default_in,
                }
            )
    return out


def device_label(device: str | int | None) -> str:
    """How the configured input device is named in errors and in systemd's STATUS=."""
    return "the default input device" if device is None else f"input device {device!r}"


def resolve_device(device: str | int | None) -> dict[str, Any]:
    """Find the input device: an index, a name substring, or None for the default.

    With no usable default input, the first input-capable device is taken (and
    logged), so a machine whose default is an output-only card still listens.
    """
    sd = _sd()
    if isinstance(device, str) and device.isdigit():
        device = int(device)
    try:
        if device is not None:
            return dict(sd.query_devices(device, "input"))
        try:
            return dict(sd.query_devices(kind="input"))
        except (ValueError, sd.PortAudioError):
            candidates = [d for d in sd.query_devices() if d["max_input_channels"] > 0]
            if not candidates:
                raise ValueError("no input device found") from None
            log.warning("no default input device; using %r", candidates[0]["name"])
            return dict(candidates[0])
    except (ValueError, sd.PortAudioError) as exc:
        raise SourceAbsentError(f"{device_label(device)} is unavailable: {exc}; {HINT}") from None



def reinitialise_portaudio(sd: Any) -> bool:
    """Re-initialise PortAudio so that its device list is read again (it is read once, at
    initialisation: a device plugged back in is otherwise invisible). sounddevice has no public
    call for this; its maintainers point to ``sd._terminate(); sd._initialize()`` (they wrap
    ``Pa_Terminate``/``Pa_Initialize``; python-sounddevice issues #3 and #125). This is the only
    place that uses them; tests/test_audio_device.py runs it against a real PulseAudio device.
    Returns False (logged) when it failed or this sounddevice lacks them."""
    terminate, initialize = getattr(sd, "_terminate", None), getattr(sd, "_initialize", None)
    if terminate is None or initialize is None:
        log.warning("this sounddevice (%s) cannot re-initialise PortAudio: a re-plugged device is found only "
                    "after a restart", getattr(sd, "__version__", "?"))
        return False
    try:
        terminate()
        initialize()
    except Exception:  # noqa: BLE001 - a half-initialised PortAudio is retried on the next attempt
        log.debug("re-initialising PortAudio failed", exc_info=True)
        return False
    return True

class MicrophoneSource:
    """Captures a microphone into the ring buffer. Owns the PortAudio stream and the capture thread;
    every PortAudio call on the stream is made under ``_lock`` (reads by the capture thread, restarts
    by the pipeline thread's :meth:`poll`)."""

    def __init__(self, *, device: str | int | None, sample_rate_hz: int | None, channels: int, block_seconds: float,
                 stall_seconds: float = 5.0, watchdog_budget_seconds: float = 60.0) -> None:
        self._sd = _sd()
        self.liveness = Liveness(stall_seconds=stall_seconds, watchdog_budget_seconds=watchdog_budget_seconds)
        self.restarts = 0
        self.info = resolve_device(device)
        self.device = device
        self.name = str(self.info["name"])
        self.sample_rate_hz = int(sample_rate_hz or self.info["default_samplerate"])
        self.channels = max(1, min(channels, int(self.info["max_input_channels"])))
        self.block_frames = max(64, int(self.sample_rate_hz * block_seconds))
        self.block_seconds = self.block_frames / self.sample_rate_hz
        self.error: Exception | None = None
        self.status_flags = 0  # reads that reported an input overflow
        self._ring: RingBuffer | None = None
        self._stream: Any = None
        self._failed = False  # the stream raised on a read: poll() reopens it
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._halt = threading.Event()  # set by stop()

    def _read_available(self) -> np.ndarray | None:
        """What the device has buffered (frames, channels), at least a block of it, or None; never waits
        for audio. Marks the stream failed when PortAudio raises."""
        with self._lock:
            stream = self._stream
            if stream is None or self._failed:
                return None
            try:
                n = stream.read_available
                if n < self.block_frames:
                    return None
                data, overflowed = stream.read(n)
            except (self._sd.PortAudioError, OSError) as exc:
                log.debug("reading %r failed: %s", self.name, exc)
                self._failed = True
                return None
        if overflowed:
            self.status_flags += 1
        return data

    def _capture(self, stop: threading.Event) -> None:
        ring = self._ring
        while not (stop.is_set() or self._halt.is_set()):
            data = self._read_available()
            if data is None:
                self._halt.wait(self.block_seconds)
                continue
            self.liveness.frames += data.shape[0]
            if ring is not None:
                ring.write(data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32))

    def _open(self) -> None:
        """Open and start the stream; the caller holds ``_lock`` (or no capture thread runs yet)."""
        sd = self._sd
        try:
            stream = sd.InputStream(
                device=self.info["index"],
                samplerate=self.sample_rate_hz,
                channels=self.channels,
                dtype="float32",
                blocksize=self.block_frames,
                latency="high",  # buffer a few hundred ms, so the capture thread's naps never overflow it
            )
            stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            raise SourceAbsentError(
                f"cannot open input device {self.name!r} at {self.sample_rate_hz} Hz, {self.channels} channel(s): {exc}; {HINT}"
            ) from None
        self._stream, self._failed = stream, False

    def start(self, ring: RingBuffer, stop: threading.Event) -> None:
        self._ring = ring
        self._open()
        self._thread = threading.Thread(target=self._capture, args=(stop,), name="microphone", daemon=True)
        self._thread.start()
        log.info("capturing %r at %d Hz, %d channel(s)", self.name, self.sample_rate_hz, self.channels)

    @property
    def healthy(self) -> bool:
        """False once capture has delivered nothing for longer than the watchdog budget."""
        return self.liveness.healthy

    @property
    def state(self) -> str:
        """One line for systemd's STATUS=."""
        return self.liveness.state(self.name, "reopening")

    def poll(self) -> None:
        """Called by the pipeline between reads: reopen a stream that died or stalled, with backoff."""
        with self._lock:
            alive = self._stream is not None and not self._failed and bool(self._stream.active)
        why = self.liveness.due(name=repr(self.name), alive=alive)
        if why is None:
            return
        if why == "stalled":
            log.warning("no audio from %r for %.0f s (the device stalled): reopening", self.name,
                        self.liveness.silent_seconds)
        elif self._stream is not None:
            log.warning("input stream on %r stopped; reopening", self.name)
        self.restarts += 1
        with self._lock:
            self._close_stream()
            self._reinitialise()
            try:
                # an index may now name another device: look the device up again by the name it had
                self.info = resolve_device(self.device if not isinstance(self.device, int) else self.name)
                self.name = str(self.info["name"])
                self._open()
            except DeviceError as exc:
                log.warning("%s (retrying in %.0f s)", exc, self.liveness.restarted())
                return
        log.info("input device %r reopened", self.name)
        self.liveness.restarted()

    def _reinitialise(self) -> None:
        reinitialise_portaudio(self._sd)

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort()
                stream.close()
            except Exception:  # noqa: BLE001 - a dead device may refuse to close
                log.debug("closing the input stream failed", exc_info=True)

    def stop(self) -> None:
        self._halt.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=2.0)
        with self._lock:
            self._close_stream()
        if self._ring is not None:
            self._ring.close()


def microphone_opener(**options: Any) -> Callable[[], MicrophoneSource]:
    """A call that opens the microphone with ``options`` (:class:`MicrophoneSource`'s), for a service
    that waits for it: every call after the first re-initialises PortAudio first, since PortAudio
    reads its device list once and a microphone plugged in (or enumerated) since is otherwise
    invisible."""
    calls = 0

    def open_microphone() -> MicrophoneSource:
        nonlocal calls
        if calls:
            reinitialise_portaudio(_sd())
        calls += 1
        return MicrophoneSource(**options)

    return open_microphone
