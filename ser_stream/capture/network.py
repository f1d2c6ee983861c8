"""Network audio (IP cameras, intercoms, streams): rtsp://, rtsps://, http(s):// and srt:// through ffmpeg.

**One connection per (re)connect**: ffmpeg (Debian's package, a subprocess) opens the stream once,
reports its streams on stderr, and decodes the first audio track to mono float32 at the track's
native rate; the rate is read from ffmpeg's own report of its output, so no probe connection
comes first (a camera or baby monitor that serves one client at a time, or an RTSP camera whose
other session a recorder holds, works). What cannot work is refused at start with the documented
exit code, from the same report; what is only not there yet (refused, timed out, a 404 or 503 from a
camera still booting) raises an error marked ``late``, which a service waits out
(:mod:`.waiting`). A reconnect asks ffmpeg for the rate learnt at start. A reader
thread copies the samples into the ring buffer, where the same resampler as the microphone's takes
them. Always real time (the stream sets the pace). When the
stream drops, the camera reboots, or nothing arrives for ``stall_seconds``,
:meth:`NetworkSource.poll` restarts ffmpeg with backoff; :attr:`healthy` turns false once audio has
been missing for longer than ``watchdog_budget_seconds``. ffmpeg dies with the daemon, even on
SIGKILL (PR_SET_PDEATHSIG), and is killed on stop. Credentials in the URL never reach a log or an
error message (:func:`mask_url`). Owns the ffmpeg process and its reader thread.
"""

from __future__ import annotations

import ctypes
import logging
import re
import shutil
import signal
import subprocess
import threading
from collections import deque
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from ..errors import DeviceError, SerStreamError, SourceAbsentError, SourceUnreachableError
from ..ringbuffer import RingBuffer
from .liveness import Liveness

log = logging.getLogger(__name__)

SCHEMES = ("rtsp", "rtsps", "http", "https", "srt")
TIMEOUT_SECONDS = 5.0  # ffmpeg's socket timeout
PR_SET_PDEATHSIG = 1


class UrlError(SerStreamError):
    """A URL that cannot name a network source (exit 78: a bad value in the config or on the command line)."""

    exit_code = 78


def is_url(text: str) -> bool:
    """Whether ``--input`` names a network source rather than a file: anything with a scheme (an
    unsupported scheme is then refused by :func:`check_url`, exit 78, never read as a file name)."""
    return "://" in text


def mask_url(url: str) -> str:
    """``url`` with any password (and a user name) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"***:***@{host}" + (f":{port}" if port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def check_url(url: str) -> str:
    """Validate a source URL (scheme and host); returns it. Raises UrlError naming the masked URL."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in SCHEMES:
        raise UrlError(f"{mask_url(url)}: unsupported audio source scheme {scheme or '(none)'!r}; use one of "
                       f"{', '.join(s + '://' for s in SCHEMES)}")
    try:
        host = urlsplit(url).hostname
    except ValueError as exc:
        raise UrlError(f"{mask_url(url)}: not a valid URL: {exc}") from None
    if not host:
        raise UrlError(f"{mask_url(url)}: the URL names no host")
    return url


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


PROBE_ARGS = ["-probesize", "32768", "-analyzeduration", "500000"]  # start within 0.5 s, not after 5 s of probing


def _timeout_args(url: str) -> list[str]:
    us = str(int(TIMEOUT_SECONDS * 1e6))
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("rtsp", "rtsps"):
        return ["-rtsp_transport", "tcp", "-timeout", us]
    if scheme == "srt":
        return ["-timeout", us]
    return ["-rw_timeout", us]


def _ffmpeg_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise DeviceError(f"{name} is not installed (Debian: apt-get install ffmpeg); it is needed for network audio")
    return path


def _classify_failure(url: str, stderr: str) -> SerStreamError:
    """Turn ffmpeg's complaint into the documented error, the URL masked."""
    text = stderr.replace(url, mask_url(url))
    last = (text.strip().splitlines() or ["no answer"])[-1][:300]
    low = text.lower()
    if any(k in low for k in ("connection refused", "no route to host", "timed out", "name or service not known",
                              "temporary failure in name resolution", "network is unreachable", "cannot assign")):
        return SourceUnreachableError(f"{mask_url(url)}: unreachable: {last}")
    if any(k in low for k in ("401", "403", "unauthorized", "forbidden")):
        return DeviceError(f"{mask_url(url)}: the stream refused us (wrong or missing credentials?): {last}")
    # a server that answers without the stream (404 or 503 while a camera or its relay boots)
    return SourceAbsentError(f"{mask_url(url)}: stream unavailable: {last}")


# ffmpeg's report of its output stream, e.g. "  Stream #0:0: Audio: pcm_f32le, 48000 Hz, mono, flt, 1536 kb/s"
OUTPUT_AUDIO = re.compile(r"^\s*Stream #\d+:\d+.*?: Audio: [^,]+, (\d+) Hz")
NO_AUDIO = ("matches no streams", "does not contain any stream")


class _Ffmpeg:
    """One ffmpeg process reading ``url``: its stdout (samples) for the source's reader thread, its
    stderr drained by a thread of its own, which keeps the last lines and learns the output rate from
    ffmpeg's report. Owned by the :class:`NetworkSource` that started it."""

    def __init__(self, ffmpeg: str, url: str, *, rate: int | None) -> None:
        self.url = url
        self.rate: int | None = None
        self.lines: deque[str] = deque(maxlen=40)
        self.reported = threading.Event()  # the output's rate is known, or ffmpeg ended before saying it
        resample = [] if rate is None else ["-ar", str(rate)]
        cmd = [ffmpeg, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info", *_timeout_args(url), *PROBE_ARGS,
               "-fflags", "nobuffer", "-i", url, "-vn", "-map", "0:a:0", "-ac", "1", *resample,
               "-f", "f32le", "-acodec", "pcm_f32le", "pipe:1"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     preexec_fn=_die_with_parent)
        self._stderr = threading.Thread(target=self._drain, name="ffmpeg-stderr", daemon=True)
        self._stderr.start()

    def _drain(self) -> None:
        output = False
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            self.lines.append(line)
            if line.startswith("Output #0"):
                output = True
            elif output and self.rate is None and (m := OUTPUT_AUDIO.match(line)):
                self.rate = int(m.group(1))
                self.reported.set()
        self.reported.set()

    def wait_for_rate(self, timeout: float) -> int:
        """The output's sample rate from ffmpeg's report; raises the documented errors (66, 69) when
        ffmpeg ends first or says nothing within ``timeout`` s (the process is then killed)."""
        if not self.reported.wait(timeout):
            self.kill()
            raise SourceUnreachableError(f"{mask_url(self.url)}: unreachable: no answer within {timeout:.0f} s")
        if self.rate is not None:
            return self.rate
        self.kill()  # reaps ffmpeg and closes its pipes: a service retrying for hours leaks no descriptor
        text = "\n".join(self.lines)
        if any(k in text for k in NO_AUDIO):
            raise DeviceError(f"{mask_url(self.url)}: the stream has no audio track (a video-only camera?)")
        raise _classify_failure(self.url, text)

    def tail(self) -> str:
        """ffmpeg's last words (the URL masked)."""
        last = next((line for line in reversed(self.lines) if line.strip()), f"ffmpeg exit status {self.proc.returncode}")
        return last.replace(self.url, mask_url(self.url)).strip()[:300]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            log.warning("ffmpeg (pid %d) did not exit", self.proc.pid)
        self._stderr.join(timeout=2)
        for f in (self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass


class NetworkSource:
    """Network audio through ffmpeg into the ring buffer; see the module docstring."""

    def __init__(self, url: str, *, stall_seconds: float = 5.0, watchdog_budget_seconds: float = 60.0,
                 block_seconds: float = 0.1) -> None:
        self.url = check_url(url)
        self.name = mask_url(url)
        self._ffmpeg = _ffmpeg_binary("ffmpeg")
        # the one connection: its own report gives the rate; its samples wait in the pipe until start()
        self._proc: _Ffmpeg | None = _Ffmpeg(self._ffmpeg, self.url, rate=None)
        self.sample_rate_hz = self._proc.wait_for_rate(TIMEOUT_SECONDS * 3)
        self.block_frames = max(1, int(self.sample_rate_hz * block_seconds))
        self.liveness = Liveness(stall_seconds=stall_seconds, watchdog_budget_seconds=watchdog_budget_seconds)
        self.error: Exception | None = None
        self.restarts = 0
        self._reader: threading.Thread | None = None
        self._ring: RingBuffer | None = None
        self._stop: threading.Event | None = None

    @property
    def healthy(self) -> bool:
        return self.liveness.healthy

    @property
    def state(self) -> str:
        return self.liveness.state(self.name, "reconnecting")

    def start(self, ring: RingBuffer, stop: threading.Event) -> None:
        self._ring, self._stop = ring, stop
        self._start_reader()
        log.info("capturing %s at %d Hz through ffmpeg (one connection)", self.name, self.sample_rate_hz)

    def _start_reader(self) -> None:
        self._reader = threading.Thread(target=self._read, args=(self._proc.proc,), name="ffmpeg-reader", daemon=True)
        self._reader.start()

    def _read(self, proc: subprocess.Popen) -> None:
        block_bytes = self.block_frames * 4
        pending = b""
        while True:
            chunk = proc.stdout.read1(block_bytes) if hasattr(proc.stdout, "read1") else proc.stdout.read(block_bytes)
            if not chunk:
                break
            pending += chunk
            usable = len(pending) - len(pending) % 4
            if usable:
                samples = np.frombuffer(pending[:usable], dtype="<f4").astype(np.float32)
                pending = pending[usable:]
                self.liveness.frames += samples.size
                self._ring.write(samples)

    def poll(self) -> None:
        """Called by the pipeline between reads: restart ffmpeg when the stream ended or stalled, with backoff."""
        why = self.liveness.due(name=self.name, alive=self._proc is not None and self._proc.proc.poll() is None)
        if why is None:
            return
        if why == "stalled":
            log.warning("no audio from %s for %.0f s: reconnecting", self.name, self.liveness.silent_seconds)
        elif self._proc is not None:
            log.warning("stream %s ended (%s); reconnecting", self.name, self._stderr_tail())
        self._kill()
        self.restarts += 1
        self._proc = _Ffmpeg(self._ffmpeg, self.url, rate=self.sample_rate_hz)  # the rate learnt at start
        self._start_reader()
        self.liveness.restarted()

    def _stderr_tail(self) -> str:
        if self._proc is None:
            return "no detail"
        self._proc.proc.poll()
        return self._proc.tail()

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.kill()
        if self._reader is not None:
            self._reader.join(timeout=2)  # the killed process's stdout ends: so does the reader

    def stop(self) -> None:
        self._kill()
        if self._ring is not None:
            self._ring.close()

