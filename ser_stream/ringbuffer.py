"""Fixed-size float32 ring buffer between the capture thread and the pipeline.

Ownership: one writer (the capture thread: the microphone's, ffmpeg's or the file
reader) and one reader (the pipeline thread). The writer owns ``_claimed`` and
``_written``, the reader owns ``_read``; each only reads the other's counters, so
no lock is needed on the data path (CPython makes the int stores atomic). The
writer raises ``_claimed`` to the end of a block *before* storing it and
``_written`` after: a reader that checks ``_claimed`` after its copy knows every
sample that may have been overwritten while it copied (a seqlock's rule). A
:class:`threading.Condition` is used only to wake a waiting reader or a
blocking writer, never inside a live source's copy.

Two write modes:
- ``write(block)`` never blocks (live sources): when the reader is more
  than ``capacity`` behind, the oldest unread samples are lost; the loss is
  counted in ``overflow_samples`` and the reader skips the gap.
- ``write_blocking(block, stop)`` waits for room (file replay with ``--fast``,
  which must not drop a window).
"""

from __future__ import annotations

import threading

import numpy as np


class RingBuffer:
    """Single-producer single-consumer float32 ring buffer of ``capacity`` samples."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = int(capacity)
        self._buf = np.zeros(self.capacity, dtype=np.float32)
        self._written = 0  # total samples ever written (writer-owned)
        self._claimed = 0  # end of the block being written, raised before its samples are stored (writer-owned)
        self._read = 0  # total samples ever consumed or skipped (reader-owned)
        self._closed = False
        self._cond = threading.Condition()
        self.overflow_samples = 0  # reader-side count of samples lost to overwrite
        self.overflow_events = 0

    # ---------------------------------------------------------------- writer
    def _copy_in(self, block: np.ndarray) -> None:
        n = block.shape[0]
        if n > self.capacity:  # only the newest ``capacity`` samples can be kept
            self._written += n - self.capacity
            block = block[-self.capacity :]
            n = self.capacity
        self._claimed = self._written + n
        start = self._written % self.capacity
        first = min(n, self.capacity - start)
        self._buf[start : start + first] = block[:first]
        if first < n:
            self._buf[: n - first] = block[first:]
        self._written += n

    def write(self, block: np.ndarray) -> None:
        """Copy ``block`` (1-D float32) in without blocking; may overwrite unread data."""
        self._copy_in(block)
        self._notify()

    def write_blocking(self, block: np.ndarray, stop: threading.Event) -> bool:
        """Copy ``block`` in, waiting for room; returns False if ``stop`` was set first."""
        offset = 0
        n = block.shape[0]
        while offset < n:
            with self._cond:
                while self.capacity - (self._written - self._read) <= 0:
                    if stop.is_set():
                        return False
                    self._cond.wait(0.1)
                room = self.capacity - (self._written - self._read)
            take = min(room, n - offset)
            self._copy_in(block[offset : offset + take])
            offset += take
            self._notify()
        return True

    def close(self) -> None:
        """Writer is done: a reader drains what is left, then sees end of stream."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _notify(self) -> None:
        # Non-blocking attempt: a live source's capture thread never waits for the lock.
        if self._cond.acquire(blocking=False):
            try:
                self._cond.notify_all()
            finally:
                self._cond.release()

    # ---------------------------------------------------------------- reader
    @property
    def available(self) -> int:
        return min(self._written - self._read, self.capacity)

    def read(self, out: np.ndarray, stop: threading.Event, timeout: float = 0.2) -> int:
        """Copy up to ``len(out)`` samples into ``out``; returns the count.

        Waits up to ``timeout`` seconds for a sample; returns 0 when none came,
        at end of stream (see :attr:`finished`) or when ``stop`` is set.
        Samples lost to overwrite are skipped and counted.
        """
        waited = False
        while True:
            written = self._written
            lag = written - self._read
            if lag > self.capacity:
                self._lose(lag - self.capacity)
                lag = self.capacity
            if lag == 0:
                if stop.is_set() or self._closed or waited:
                    return 0
                waited = True
                with self._cond:
                    if self._written == written and not self._closed:
                        self._cond.wait(timeout)
                continue
            n = min(lag, out.shape[0])
            start = self._read % self.capacity
            first = min(n, self.capacity - start)
            out[:first] = self._buf[start : start + first]
            if first < n:
                out[first:n] = self._buf[: n - first]
            # The writer may have lapped us during the copy (or be storing over it now):
            # the head of what we copied is then newer audio, so drop it as lost.
            bad = min(max(self._claimed - self.capacity - self._read, 0), n)
            self._read += n
            if bad:
                self.overflow_samples += bad
                self.overflow_events += 1
                out[: n - bad] = out[bad:n].copy()
                n -= bad
            self._notify()
            if n:
                return n

    @property
    def finished(self) -> bool:
        """The writer closed the buffer and everything was read."""
        return self._closed and self._written == self._read

    def _lose(self, count: int) -> None:
        self.overflow_samples += count
        self.overflow_events += 1
        self._read += count
