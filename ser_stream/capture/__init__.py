"""Audio sources: a microphone (sounddevice), a file or stdin (soundfile), a network stream (ffmpeg).

Each fills a :class:`~ser_stream.ringbuffer.RingBuffer` with mono float32 audio
at its native rate, from a thread of its own; the pipeline resamples.
:func:`open_source` holds the rule that picks one for ``run``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Config
    from ..service import Source


def open_source(config: "Config", *, input: str | None, fast: bool) -> tuple["Source", bool]:
    """``run``'s source and whether it is live: ``input`` (``--input``) when given, a network
    source if it has a scheme (an unsupported scheme is refused, exit 78; never read as a file
    name), else a file or ``-``; without it ``audio.url``, else the configured microphone. A live
    source (microphone, network) is what a home hears; a file is a test."""
    from .network import is_url

    a = config.audio
    url = input if input and is_url(input) else (None if input else a.url)
    if url is not None:
        from .network import NetworkSource, check_url

        return NetworkSource(check_url(url), stall_seconds=a.stall_seconds,
                             watchdog_budget_seconds=a.watchdog_budget_seconds), True
    if input:
        from .file import FileSource

        return FileSource(input, realtime=not fast), False
    from .microphone import MicrophoneSource

    return MicrophoneSource(device=a.device, sample_rate_hz=a.sample_rate_hz, channels=a.channels,
                            block_seconds=a.block_seconds, stall_seconds=a.stall_seconds,
                            watchdog_budget_seconds=a.watchdog_budget_seconds), True
