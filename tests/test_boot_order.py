"""After a power cut (issue 28): the daemons start before their broker and their cameras, or before
the audio server of their microphone, and each room comes back by itself, without a restart.

Real parts: mosquitto, an HTTP camera (`ffmpeg -listen 1`), an RTSP camera (GStreamer's RTSP
server), a PulseAudio server, systemd's notify protocol on a datagram socket as systemd reads it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from .conftest import ROOT, PulseServer
from .test_mqtt import ENTITIES, Daemon, Subscriber
from .test_network import HttpAudioServer, RtspAudioServer, ffmpeg_pids

BROKER_LATE_SECONDS = 10.0  # the broker comes up 10 s after the daemons
CAMERAS_LATE_SECONDS = 20.0  # the cameras 20 s after the daemons


class NotifySocket:
    """systemd's side of sd_notify: a datagram socket collecting what the daemon says, with times."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._closed = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed:
            try:
                self.messages.append((time.monotonic(), self.sock.recv(4096).decode()))
            except socket.timeout:
                continue
            except OSError:
                return

    def said(self, text: str, before: float = float("inf")) -> bool:
        return any(text in m for t, m in list(self.messages) if t < before)

    def close(self) -> None:
        self._closed = True
        self._thread.join(2)
        self.sock.close()


def wait_until(cond, seconds: float, why) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, why()
        time.sleep(0.1)


def windows(d: Daemon) -> list[dict]:
    return [w for w in list(d.lines) if "speech" in w]


def test_daemons_started_before_their_broker_and_cameras_come_back_by_themselves(
        broker_factory, long_wav: Path, tmp_path: Path):
    """Two rooms (an HTTP camera, an RTSP camera), as the units run them (audio.url; systemd's
    NOTIFY_SOCKET set, so they wait for a late source by default). Broker 10 s after them, cameras
    20 s after them: READY=1 and STATUS=waiting at once, the watchdog fed while waiting, discovery and
    `online` on the broker before any camera serves, speech once they serve, every hop from the
    camera's first second on (nothing lost), exit 0 on SIGTERM."""
    broker = broker_factory(start=False)
    http = HttpAudioServer(long_wav, tmp_path, start=False)
    rtsp = RtspAudioServer(long_wav, tmp_path, start=False)
    rooms = {"kitchen": http.url("cam:s3cret-pass@"), "hall": rtsp.url}
    notify = {room: NotifySocket(tmp_path / f"notify-{room}.sock") for room in rooms}
    t0 = time.monotonic()
    daemons = {room: Daemon([], {**broker.config_args(), "SER_STREAM_MQTT__DEVICE_ID": room,
                                 "SER_STREAM_AUDIO__URL": url, "SER_STREAM_AUDIO__STALL_SECONDS": "3",
                                 "NOTIFY_SOCKET": str(notify[room].path), "WATCHDOG_USEC": "3000000",
                                 "SER_STREAM_STATE__DIRECTORY": str(tmp_path / room)}, tmp_path)
               for room, url in rooms.items()}
    sub = None
    try:
        for room, d in daemons.items():
            wait_until(lambda: "not there yet" in d.log, BROKER_LATE_SECONDS, lambda: d.log)
        time.sleep(max(0.0, t0 + BROKER_LATE_SECONDS - time.monotonic()))
        broker.start()
        sub = Subscriber(broker, topics=("homeassistant/#", "ser_stream/#"))
        def announced(room: str) -> bool:
            ids = {c.get("unique_id", "") for c in discovery_of_all(sub).values()}
            return (len([u for u in ids if u.startswith(f"ser_stream_{room}_")]) == len(ENTITIES)
                    and bool(sub.on(f"ser_stream/{room}/availability")))

        # discovery and online reach the broker while the cameras are still off (paho's reconnect backoff)
        sub.wait_for(lambda: all(announced(room) for room in rooms), timeout=45)
        assert all(p == "online" for room in rooms for _, p, _ in sub.on(f"ser_stream/{room}/availability"))
        assert all(not windows(d) for d in daemons.values())
        time.sleep(max(0.0, t0 + CAMERAS_LATE_SECONDS - time.monotonic()))
        cameras_on = time.monotonic()
        http.start()
        rtsp.start()
        for room, d in daemons.items():
            wait_until(lambda: any(w["speech"] for w in windows(d)), 60, lambda: d.log)
            assert d.proc.poll() is None, d.log
        time.sleep(3)
    finally:
        for d in daemons.values():
            d.proc.send_signal(signal.SIGTERM)
        codes = {room: d.wait(30) for room, d in daemons.items()}
        ended = time.monotonic()
        http.stop()
        rtsp.stop()
        for n in notify.values():
            n.close()
        if sub is not None:
            sub.close()
    for room, d in daemons.items():
        log = d.log
        assert codes[room] == 0, log
        assert "s3cret-pass" not in log and "ERROR" not in log, log
        assert log.count("not there yet") == 1, log  # one WARNING, then at most one a minute
        n = notify[room]
        assert n.messages[0][1].startswith("READY=1") and f"STATUS=waiting for {mask(rooms[room])}" in n.messages[0][1]
        assert n.said("WATCHDOG=1", before=cameras_on), n.messages  # fed while it waited
        assert n.said("STATUS=listening on"), n.messages
        ts = [w["t"] for w in windows(d)]
        assert ts and all(abs(b - a - 1.0) < 1e-6 for a, b in zip(ts, ts[1:])), ts  # no hop missing
        # every second the camera served went into a window (within the reconnect backoff's last wait)
        assert ts[-1] >= (ended - cameras_on) - 30 - 3, (ts[-1], ended - cameras_on)
        assert "ring buffer overflow" not in log
    assert not ffmpeg_pids(f":{http.port}/") and not ffmpeg_pids(f":{rtsp.port}/")


def discovery_of_all(sub: Subscriber) -> dict[str, dict]:
    """Every discovery config on the broker, by topic (both rooms)."""
    import json

    return {tp: json.loads(p) for _, tp, p, _ in list(sub.messages)
            if tp.startswith("homeassistant/") and tp.endswith("/config") and p}


def mask(url: str) -> str:
    from ser_stream.capture.network import mask_url

    return mask_url(url)


def test_a_microphone_whose_audio_server_starts_after_the_daemon(wav48: Path, tmp_path: Path):
    """The daemon under systemd (NOTIFY_SOCKET) with `--device pulse`, before PulseAudio runs: PortAudio
    has no such device yet. One WARNING, READY=1 with STATUS=waiting, and once the server is up (as a
    USB microphone that enumerates late) the device is found and its speech heard; no exit 69, no
    restart, exit 0 on SIGTERM."""
    root = tmp_path / "pulse"
    (root / "run").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SER_STREAM_")}
    probe = PulseServer.environment(root)
    env.update(probe)
    notify = NotifySocket(tmp_path / "notify.sock")
    env.update({"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "3000000",
                "SER_STREAM_STATE__DIRECTORY": str(tmp_path / "state")})
    err_path = tmp_path / "stderr.log"
    server = None
    lines: list[str] = []
    with open(err_path, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "ser_stream", "run", "--device", "pulse", "--format", "json"],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err)
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()
        try:
            wait_until(lambda: b"not there yet" in err_path.read_bytes(), 30, err_path.read_text)
            time.sleep(3)
            assert proc.poll() is None, err_path.read_text()
            server = PulseServer(root)
            wait_until(lambda: b"capturing 'pulse'" in err_path.read_bytes(), 60, err_path.read_text)
            assert server.play(wav48).wait(20) == 0
            wait_until(lambda: any(b'"speech": true' in x for x in lines), 20, err_path.read_text)
        finally:
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(30)
            reader.join(5)
            notify.close()
            if server is not None:
                server.stop()
    log = err_path.read_text()
    assert rc == 0, log
    assert "ERROR" not in log and log.count("not there yet") == 1, log
    assert notify.messages[0][1].startswith("READY=1") and "STATUS=waiting for input device 'pulse'" in notify.messages[0][1]
    assert notify.said("STATUS=listening on pulse"), notify.messages


def test_the_wait_says_so_once_then_once_a_minute_and_ends_on_what_will_not_come(monkeypatch, caplog):
    """The rule alone, on a clock of its own: the reconnect's backoff (1 s doubling to 30 s), one WARNING
    and then at most one a minute, READY=1 once, the watchdog fed; an error that is not late ends the
    wait with its exit code; a stop ends it with None."""
    import logging

    from ser_stream.capture import waiting
    from ser_stream.errors import DeviceError, SourceUnreachableError

    now = [0.0]
    pauses: list[float] = []

    def pause(seconds, stop, heartbeat):
        pauses.append(seconds)
        now[0] += seconds
        if heartbeat is not None:
            heartbeat.watchdog()
        return stop.is_set()

    monkeypatch.setattr(waiting, "_pause", pause)

    class Beat:
        def __init__(self):
            self.said: list[str] = []

        def ready(self, line):
            self.said.append(f"READY {line}")

        def status(self, line):
            self.said.append(f"STATUS {line}")

        def watchdog(self):
            self.said.append("WATCHDOG")

    late = SourceUnreachableError("rtsp://***:***@cam/x: unreachable: Connection refused")
    answers = iter([late] * 12 + ["the source"])

    def open_source():
        a = next(answers)
        if isinstance(a, Exception):
            raise a
        return a

    beat = Beat()
    with caplog.at_level(logging.DEBUG, logger="ser_stream.capture.waiting"):
        got = waiting.wait_for_source(open_source, name="rtsp://***:***@cam/x", failed=late, stop=threading.Event(),
                                      heartbeat=beat, clock=lambda: now[0])
    assert got == "the source"
    assert pauses == [1, 2, 4, 8, 16, 30, 30, 30, 30, 30, 30, 30, 30]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 5, warnings  # at 0 s, then 61, 121, 181 and 241 s of 271 s of waiting
    assert warnings[0].startswith("not there yet: rtsp://***:***@cam/x: unreachable")
    assert all(w.startswith("still waiting after") for w in warnings[1:])
    assert beat.said[0] == "READY waiting for rtsp://***:***@cam/x" and beat.said.count("WATCHDOG") == len(pauses)

    stop = threading.Event()
    stop.set()
    assert waiting.wait_for_source(lambda: 1 / 0, name="x", failed=late, stop=stop) is None
    answers = iter([late, DeviceError("rtsp://cam/x: the stream refused us (wrong or missing credentials?)")])
    try:
        waiting.wait_for_source(open_source, name="x", failed=late, stop=threading.Event(), clock=lambda: now[0])
    except DeviceError as exc:
        assert exc.exit_code == 69 and not exc.late
    else:
        raise AssertionError("an error that is not late must end the wait")
