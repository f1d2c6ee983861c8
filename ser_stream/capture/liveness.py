"""Is a live source (a microphone, a network stream) still delivering audio? Shared by both.

The capture thread adds to :attr:`Liveness.frames` as samples arrive; the pipeline thread calls
:meth:`Liveness.due` between reads, which says when the source should be restarted (it stopped, or
it stayed open and delivered nothing for ``stall_seconds``), spacing restarts with exponential
backoff (1 s doubling to 30 s). :attr:`healthy` turns false once audio has been missing for longer
than ``watchdog_budget_seconds``: the service then stops feeding the systemd watchdog.
Owned by the source; ``frames`` has one writer (the capture thread), the rest one (the pipeline).
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0


class Backoff:
    """The waits between attempts to reach a source: 1 s, doubling to MAX_BACKOFF_SECONDS; back to
    1 s after a success. One rule for a source that dropped and one that is not there yet."""

    def __init__(self, first: float = 1.0, most: float = MAX_BACKOFF_SECONDS) -> None:
        self.first, self.most = first, most
        self._wait = first

    def next(self) -> float:
        """The wait before the next attempt (and the one after it grows)."""
        wait = self._wait
        self._wait = min(self._wait * 2.0, self.most)
        return wait

    def reset(self) -> None:
        self._wait = self.first


class Liveness:
    def __init__(self, *, stall_seconds: float, watchdog_budget_seconds: float) -> None:
        self.stall_seconds = stall_seconds
        self.watchdog_budget_seconds = watchdog_budget_seconds
        self.frames = 0  # samples delivered so far (the capture thread adds to it)
        self._seen = 0
        self._last_audio = time.monotonic()
        self._dead_since: float | None = None  # when audio stopped arriving (None: it arrives)
        self._retry_at = 0.0
        self._backoff = Backoff()

    @property
    def healthy(self) -> bool:
        return self._dead_since is None or time.monotonic() - self._dead_since < self.watchdog_budget_seconds

    def state(self, name: str, doing: str) -> str:
        """One line for systemd's STATUS=."""
        if self._dead_since is None:
            return f"listening on {name}"
        return f"no audio from {name} for {time.monotonic() - self._dead_since:.0f} s; {doing}"

    def due(self, *, name: str, alive: bool) -> str | None:
        """Whether to restart the source now: None, or why ("stalled", "stopped"). Logs a return of audio."""
        now = time.monotonic()
        if self.frames != self._seen:
            self._seen = self.frames
            self._last_audio = now
            if self._dead_since is not None:
                log.warning("audio from %s flows again after %.1f s", name, now - self._dead_since)
                self._dead_since = None
                self._backoff.reset()
        stalled = alive and now - self._last_audio >= self.stall_seconds
        if alive and not stalled:
            return None
        if self._dead_since is None:
            self._dead_since = self._last_audio if stalled else now
        if now < self._retry_at:
            return None
        return "stalled" if stalled else "stopped"

    @property
    def silent_seconds(self) -> float:
        return time.monotonic() - self._last_audio

    def restarted(self) -> float:
        """Call after a restart attempt: the new source gets ``stall_seconds`` to deliver, and the next
        attempt waits the backoff. Returns that wait (s)."""
        now = time.monotonic()
        self._last_audio = now
        wait = self._backoff.next()
        self._retry_at = now + wait
        return wait
