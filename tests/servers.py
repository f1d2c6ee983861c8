"""The one wait for a server a test starts (ffmpeg's HTTP server, GStreamer's RTSP server, mosquitto,
PulseAudio, Home Assistant): until it accepts connections, before the daemon under test starts.

A server accepts connections once its socket is in the kernel's LISTEN state; this reads that state
from /proc/net (tcp, tcp6, unix) instead of connecting, because `ffmpeg -listen 1` serves exactly
one client and a probe connection would take it. A daemon started before that moment connects
too early on a busy machine (issue 28: a loaded CI run failed that way).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

TCP_LISTEN = "0A"  # st in /proc/net/tcp
TCP_ESTABLISHED = "01"
UNIX_ACCEPTING = 0x10000  # __SO_ACCEPTCON in /proc/net/unix's Flags: a listening socket


def tcp_listening(port: int) -> bool:
    """Some socket LISTENs on ``port`` (IPv4 or IPv6, any local address), or has already accepted a
    connection there: `ffmpeg -listen 1` closes its listening socket once a client (a daemon that was
    already retrying) is in, which can happen between two looks."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] in (TCP_LISTEN, TCP_ESTABLISHED) and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def unix_listening(path: Path) -> bool:
    """A listening unix socket is bound to ``path``."""
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[7] == str(path) and int(fields[3], 16) & UNIX_ACCEPTING:
            return True
    return False


def wait_until_listening(where: int | Path, *, proc: subprocess.Popen | None = None, what: str = "server",
                         log: Path | None = None, timeout: float = 60.0) -> float:
    """Wait until the TCP port or unix socket ``where`` accepts connections; returns the seconds it took.
    Fails (with the tail of ``log``) when ``proc`` ends first or ``timeout`` s go by."""
    check = (lambda: tcp_listening(where)) if isinstance(where, int) else (lambda: unix_listening(Path(where)))
    start = time.monotonic()
    while not check():
        tail = log.read_text(errors="replace")[-2000:] if log is not None and log.exists() else ""
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}) before listening on {where}: {tail}")
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"{what} was not listening on {where} after {timeout:.0f} s: {tail}")
        time.sleep(0.05)
    return time.monotonic() - start
