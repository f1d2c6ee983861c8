"""Audio sources: a microphone (sounddevice), a file or stdin (soundfile), a network stream (ffmpeg).

Each fills a :class:`~ser_stream.ringbuffer.RingBuffer` with mono float32 audio
at its native rate, from a thread of its own; the pipeline resamples.
:func:`source_opener` holds the rule that picks one for ``run``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from ..config import Config
    from ..service import Source


def source_opener(config: "Config", *, input: str | None, fast: bool) -> tuple[Callable[[], "Source"], str, bool]:
    """``run``'s source as a call that opens it (again, when a service waits for it: :mod:`.waiting`),
    the name it is logged by (credentials masked) and whether it is live. The rule: ``input``
    (``--input``) when given, a network source if it has a scheme (an unsupported or malformed URL
    is refused here, exit 78, never read as a file name and never waited for), else a file or
    ``-``; without it ``audio.url``, else the configured microphone. A live source (microphone,
    network) is what a home hears; a file is a test."""
    from .network import is_url

    a = config.audio
    url = input if input and is_url(input) else (None if input else a.url)
    if url is not None:
        from .network import NetworkSource, check_url, mask_url

        check_url(url)
        return (lambda: NetworkSource(url, stall_seconds=a.stall_seconds,
                                      watchdog_budget_seconds=a.watchdog_budget_seconds)), mask_url(url), True
    if input:
        from .file import FileSource

        return (lambda: FileSource(input, realtime=not fast)), input, False
    from .microphone import device_label, microphone_opener

    opener = microphone_opener(device=a.device, sample_rate_hz=a.sample_rate_hz, channels=a.channels,
                               block_seconds=a.block_seconds, stall_seconds=a.stall_seconds,
                               watchdog_budget_seconds=a.watchdog_budget_seconds)
    return opener, device_label(a.device), True
