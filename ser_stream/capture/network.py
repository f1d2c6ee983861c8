"""Network audio (IP cameras, intercoms, streams): rtsp://, rtsps://, http(s):// and srt:// through ffmpeg.

ffprobe learns the stream's audio rate at start (and refuses what cannot work, with the documented
exit code); then ffmpeg (Debian's package, a subprocess) decodes the first audio track to mono
float32 at that native rate, which a reader thread copies into the ring buffer, where the same
resampler as the microphone's takes it. Always real time (the stream sets the pace). When the
stream drops, the camera reboots, or nothing arrives for ``stall_seconds``,
:meth:`NetworkSource.poll` restarts ffmpeg with backoff; :attr:`healthy` turns false once audio has
been missing for longer than ``watchdog_budget_seconds``. ffmpeg dies with the daemon, even on
SIGKILL (PR_SET_PDEATHSIG), and is killed on stop. Credentials in the URL never reach a log or an
error message (:func:`mask_url`). Owns the ffmpeg process and its reader thread.
"""

from __future__ import annotations

import ctypes
import logging
import shutil
import signal
import subprocess
import threading
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from ..errors import DeviceError, InputMissingError, SerStreamError
from ..ringbuffer import RingBuffer
from .liveness import Liveness

log = logging.getLogger(__name__)

SCHEMES = ("rtsp", "rtsps", "http", "https", "srt")
TIMEOUT_SECONDS = 5.0  # ffprobe's and ffmpeg's socket timeout
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
    """Turn ffprobe's complaint into the documented error, the URL masked."""
    text = stderr.replace(url, mask_url(url))
    last = (text.strip().splitlines() or ["no answer"])[-1][:300]
    low = text.lower()
    if any(k in low for k in ("connection refused", "no route to host", "timed out", "name or service not known",
                              "temporary failure in name resolution", "network is unreachable", "cannot assign")):
        return InputMissingError(f"{mask_url(url)}: unreachable: {last}")
    if any(k in low for k in ("401", "403", "unauthorized", "forbidden")):
        return DeviceError(f"{mask_url(url)}: the stream refused us (wrong or missing credentials?): {last}")
    return DeviceError(f"{mask_url(url)}: stream unavailable: {last}")


def probe_rate(url: str) -> int:
    """The sample rate of the stream's first audio track; raises the documented errors (66, 69)."""
    ffprobe = _ffmpeg_binary("ffprobe")
    cmd = [ffprobe, "-v", "error", *_timeout_args(url), *PROBE_ARGS, "-select_streams", "a:0", "-show_entries", "stream=sample_rate",
           "-of", "csv=p=0", url]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_SECONDS * 3, stdin=subprocess.DEVNULL,
                           preexec_fn=_die_with_parent)
    except subprocess.TimeoutExpired:
        raise InputMissingError(f"{mask_url(url)}: unreachable: no answer within {TIMEOUT_SECONDS * 3:.0f} s") from None
    if r.returncode != 0:
        raise _classify_failure(url, r.stderr)
    rates = [x.strip() for x in r.stdout.splitlines() if x.strip().isdigit()]
    if not rates:
        raise DeviceError(f"{mask_url(url)}: the stream has no audio track (a video-only camera?)")
    return int(rates[0])


class NetworkSource:
    """Network audio through ffmpeg into the ring buffer; see the module docstring."""

    def __init__(self, url: str, *, stall_seconds: float = 5.0, watchdog_budget_seconds: float = 60.0,
                 block_seconds: float = 0.1) -> None:
        self.url = check_url(url)
        self.name = mask_url(url)
        self.sample_rate_hz = probe_rate(url)
        self.block_frames = max(1, int(self.sample_rate_hz * block_seconds))
        self.liveness = Liveness(stall_seconds=stall_seconds, watchdog_budget_seconds=watchdog_budget_seconds)
        self.error: Exception | None = None
        self.restarts = 0
        self._ffmpeg = _ffmpeg_binary("ffmpeg")
        self._proc: subprocess.Popen | None = None
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
        self._spawn()
        log.info("capturing %s at %d Hz through ffmpeg", self.name, self.sample_rate_hz)

    def _spawn(self) -> None:
        cmd = [self._ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", *_timeout_args(self.url), *PROBE_ARGS,
               "-fflags", "nobuffer", "-i", self.url,
               "-vn", "-map", "0:a:0", "-ac", "1", "-ar", str(self.sample_rate_hz), "-f", "f32le", "-acodec", "pcm_f32le",
               "pipe:1"]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      preexec_fn=_die_with_parent)
        self._reader = threading.Thread(target=self._read, args=(self._proc,), name="ffmpeg-reader", daemon=True)
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
        why = self.liveness.due(name=self.name, alive=self._proc is not None and self._proc.poll() is None)
        if why is None:
            return
        if why == "stalled":
            log.warning("no audio from %s for %.0f s: reconnecting", self.name, self.liveness.silent_seconds)
        elif self._proc is not None:
            log.warning("stream %s ended (%s); reconnecting", self.name, self._stderr_tail())
        self._kill()
        self.restarts += 1
        self._spawn()
        self.liveness.restarted()

    def _stderr_tail(self) -> str:
        proc = self._proc
        if proc is None or proc.stderr is None:
            return "no detail"
        try:
            text = proc.stderr.read().decode("utf-8", "replace") if proc.poll() is not None else ""
        except (OSError, ValueError):
            text = ""
        last = (text.strip().splitlines() or [f"ffmpeg exit status {proc.returncode}"])[-1]
        return last.replace(self.url, self.name)[:300]

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            log.warning("ffmpeg (pid %d) did not exit", proc.pid)
        if self._reader is not None:
            self._reader.join(timeout=2)  # the killed process's stdout ends: so does the reader
        for f in (proc.stdout, proc.stderr):
            try:
                f.close()
            except OSError:
                pass

    def stop(self) -> None:
        self._kill()
        if self._ring is not None:
            self._ring.close()

