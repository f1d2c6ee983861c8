"""File and stdin input: any format libsndfile reads (WAV, FLAC, OGG, ...), any rate, any channels."""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import AudioReadError, InputMissingError
from ..ringbuffer import RingBuffer

log = logging.getLogger(__name__)

STDIN = "-"


_DATA_CHUNK = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def _truncation(extra_info: str) -> str | None:
    """libsndfile notes a WAV/AIFF data chunk longer than the file as 'data : N (should be M)'."""
    m = _DATA_CHUNK.search(extra_info or "")
    if m and int(m.group(2)) < int(m.group(1)):
        return f"header declares {m.group(1)} data bytes, the file holds {m.group(2)}"
    return None


class AudioFile:
    """An open audio file read in mono float32 blocks, never whole. Owned by one thread."""

    def __init__(self, path: str | Path) -> None:
        self.name = str(path)
        if self.name == STDIN:
            self.name = "<stdin>"
            target = sys.stdin.fileno()  # libsndfile reads WAV (not FLAC) from a pipe
        else:
            p = Path(path)
            if not p.exists():
                raise InputMissingError(f"{p}: no such file")
            if not p.is_file():
                raise InputMissingError(f"{p}: not a regular file")
            target = p
        try:
            self._f = sf.SoundFile(target, closefd=False) if isinstance(target, int) else sf.SoundFile(target)
        except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
            raise AudioReadError(f"{self.name}: unreadable audio: {exc}") from None
        self.sample_rate_hz = int(self._f.samplerate)
        self.channels = int(self._f.channels)
        self.declared_frames = int(self._f.frames) if self._f.seekable() else None
        self.frames_read = 0
        self.truncated_note = _truncation(self._f.extra_info) if self.declared_frames is not None else None
        if self.declared_frames == 0:
            self._f.close()
            raise AudioReadError(f"{self.name}: the file holds no audio samples")

    def blocks(self, block_frames: int) -> Iterator[np.ndarray]:
        """Mono float32 blocks of up to ``block_frames`` samples; raises AudioReadError on a bad file."""
        try:
            while True:
                data = self._f.read(block_frames, dtype="float32", always_2d=True)
                if data.shape[0] == 0:
                    break
                self.frames_read += data.shape[0]
                yield data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioReadError(f"{self.name}: unreadable audio after {self.frames_read} samples: {exc}") from None
        if self.frames_read == 0:
            raise AudioReadError(f"{self.name}: the file holds no audio samples")
        if self.truncated_note:
            raise AudioReadError(f"{self.name}: truncated audio ({self.truncated_note}); {self.frames_read} samples were read")

    def close(self) -> None:
        self._f.close()


class FileSource:
    """Replays a file (or stdin) into the ring buffer from its own thread.

    ``realtime=True`` paces the replay at the file's rate; otherwise it runs as
    fast as the pipeline consumes (the writer blocks when the ring is full, so
    no window is dropped). Errors are kept in ``error`` for the caller.
    """

    def __init__(self, path: str | Path, *, realtime: bool, block_seconds: float | None = None) -> None:
        # real time: 0.1 s blocks, like a microphone; --fast: 0.5 s blocks, fewer hand-overs
        block_seconds = block_seconds or (0.1 if realtime else 0.5)
        self.audio = AudioFile(path)
        self.name = self.audio.name
        self.sample_rate_hz = self.audio.sample_rate_hz
        self.realtime = realtime
        self.block_frames = max(1, int(self.sample_rate_hz * block_seconds))
        self.error: Exception | None = None
        self.healthy = True  # a file never stalls: the watchdog is fed while it streams
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> str:
        return f"listening on {self.name}"

    def start(self, ring: RingBuffer, stop: threading.Event) -> None:
        self._thread = threading.Thread(target=self._run, args=(ring, stop), name="file-source", daemon=True)
        self._thread.start()

    def _run(self, ring: RingBuffer, stop: threading.Event) -> None:
        t0 = time.monotonic()
        sent = 0
        try:
            for block in self.audio.blocks(self.block_frames):
                if self.realtime:
                    delay = t0 + sent / self.sample_rate_hz - time.monotonic()
                    if delay > 0 and stop.wait(delay):
                        break
                if not ring.write_blocking(block, stop):
                    break
                sent += block.shape[0]
        except Exception as exc:  # noqa: BLE001 - reported by the caller with its exit code
            self.error = exc
        finally:
            self.audio.close()
            ring.close()

    def poll(self) -> None:
        """Nothing to supervise for a file."""

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.join(timeout=5)
