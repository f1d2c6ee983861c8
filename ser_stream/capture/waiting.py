"""Waiting for a live source that is not there yet: the service's rule after a power cut.

A home server boots in 30 s, an IP camera in 60-90 s, a USB microphone behind a hub enumerates
late. A source whose opening fails with an error marked ``late`` (a network source that refuses or
does not answer, a stream path not served yet, a device not in PortAudio's list or not opening) is
tried again with the reconnect's backoff (:class:`~.liveness.Backoff`: 1 s doubling to 30 s) for as
long as the daemon runs, instead of exiting (66, 69) into a restart loop or, worse, a unit that
systemd gives up on. Anything else (a malformed URL, 78; ffmpeg or PortAudio missing; credentials
refused; a stream without audio) still ends the run with its exit code.

It logs one WARNING when the wait begins and at most one a minute while it lasts, naming the
source as :func:`~.network.mask_url` gives it (credentials never appear), and tells systemd the
truth: READY=1 (the daemon runs: MQTT, discovery and ``online`` go ahead), ``STATUS=waiting for
NAME``, and the watchdog fed, since waiting is what the daemon should be doing.

:func:`waits_for_source` says when the rule applies: ``audio.wait_for_source``, or by default when
the daemon runs as a service (systemd's ``NOTIFY_SOCKET`` is set, as for the units' Type=notify;
the container sets the key). An interactive ``run`` keeps the quick exit.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable, Protocol, TypeVar

from ..errors import SerStreamError
from .liveness import MAX_BACKOFF_SECONDS, Backoff

log = logging.getLogger(__name__)

STILL_WAITING_EVERY_SECONDS = 60.0  # at most one WARNING a minute while the wait lasts
# Set by systemd for a Type=notify service (all of ours). Not INVOCATION_ID: every process a user
# service spawns inherits it, a desktop terminal's shells included, where a run must exit at once.
SERVICE_VARIABLES = ("NOTIFY_SOCKET",)

S = TypeVar("S")


class Heartbeat(Protocol):
    """What the wait tells the service manager (:class:`~ser_stream.service.Notifier`)."""

    def ready(self, line: str) -> None: ...

    def status(self, line: str) -> None: ...

    def watchdog(self) -> None: ...


def under_service() -> bool:
    """Whether systemd started this process as a service (its environment says so)."""
    return any(os.environ.get(v) for v in SERVICE_VARIABLES)


def waits_for_source(setting: bool | None, *, live: bool) -> bool:
    """Whether a late live source is waited for: ``setting`` (``audio.wait_for_source``) when given,
    else when running as a service. A file is never waited for."""
    if not live:
        return False
    return under_service() if setting is None else setting


def wait_for_source(open_source: Callable[[], S], *, name: str, failed: SerStreamError, stop: threading.Event,
                    heartbeat: Heartbeat | None = None, clock: Callable[[], float] = time.monotonic) -> S | None:
    """Try ``open_source`` until it gives a source (returned) or ``stop`` is set (None), after its
    first attempt ``failed`` with a late error. A failure that is not late is raised."""
    backoff = Backoff()
    started = said = clock()
    log.warning("not there yet: %s; waiting for it, retried with backoff up to %.0f s", failed, MAX_BACKOFF_SECONDS)
    if heartbeat is not None:
        heartbeat.ready(f"waiting for {name}")
    attempts = 1
    while not _pause(backoff.next(), stop, heartbeat):
        attempts += 1
        try:
            source = open_source()
        except SerStreamError as exc:
            if not exc.late:
                raise
            now = clock()
            if now - said >= STILL_WAITING_EVERY_SECONDS:
                said = now
                log.warning("still waiting after %.0f s (%d attempts): %s", now - started, attempts, exc)
            else:
                log.debug("waiting for %s: %s", name, exc)
            continue
        log.info("%s is there after %.0f s of waiting (%d attempts)", name, clock() - started, attempts)
        return source
    log.info("stopped while waiting for %s", name)
    return None


def _pause(seconds: float, stop: threading.Event, heartbeat: Heartbeat | None) -> bool:
    """Wait ``seconds`` (or until ``stop``), feeding the watchdog; True when stopped."""
    end = time.monotonic() + seconds
    while True:
        if heartbeat is not None:
            heartbeat.watchdog()
        left = end - time.monotonic()
        if left <= 0:
            return stop.is_set()
        if stop.wait(min(left, 1.0)):
            return True
