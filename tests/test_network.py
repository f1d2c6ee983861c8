"""Network audio through ffmpeg, against real servers on loopback: an HTTP stream served by
`ffmpeg -listen 1` and an RTSP stream from GStreamer's RTSP server, each killed and restarted."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ser_stream.capture.network import mask_url

from .conftest import MDWE, ROOT, free_port, mdwe_supported, need
from .servers import wait_until_listening


def ffmpeg_pids(marker: str) -> list[int]:
    """PIDs of ffmpeg (or ffprobe) processes whose command line holds ``marker``."""
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            except OSError:
                continue
            if ("ffmpeg" in cmd or "ffprobe" in cmd) and marker in cmd and "-listen" not in cmd:
                out.append(int(pid))
    return out


class HttpAudioServer:
    """`ffmpeg -listen 1` serving a stream (WAV unless told another codec) in real time to **one
    client**, started once (and again only when a test restarts it): a daemon that opened a second
    connection would get nothing."""

    def __init__(self, audio: Path, root: Path, *, loop: bool = True, start: bool = True,
                 encode: tuple[str, str, str] = ("pcm_s16le", "wav", "live.wav")) -> None:
        """``encode``: (ffmpeg codec, container format, path) of what is served."""
        need(shutil.which("ffmpeg") is not None, "ffmpeg (Debian package ffmpeg) is not installed")
        self.port = free_port()
        self.audio = audio
        self.loop = loop
        self.codec, self.container, self.path = encode
        self.log_path = root / f"http-{self.port}.log"
        self.log = open(self.log_path, "ab")
        self._proc: subprocess.Popen | None = None
        self.starts = 0
        if start:  # else the test starts it later (a camera that is late at boot)
            self.start()

    def start(self) -> None:
        """Start serving, and return once the server listens (a daemon started before would connect too early)."""
        self.starts += 1
        self._proc = subprocess.Popen(
            ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re",
             *(["-stream_loop", "-1"] if self.loop else []), "-i", str(self.audio),
             "-c:a", self.codec, "-f", self.container, "-listen", "1", f"http://127.0.0.1:{self.port}/{self.path}"],
            stdout=self.log, stderr=self.log)
        wait_until_listening(self.port, proc=self._proc, what="ffmpeg -listen", log=self.log_path)

    @property
    def serving(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(5)

    def url(self, userinfo: str = "") -> str:
        return f"http://{userinfo}127.0.0.1:{self.port}/{self.path}"


RTSP_SERVER = r'''
import sys, gi
gi.require_version("Gst", "1.0"); gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer, GLib
Gst.init(None)
server = GstRtspServer.RTSPServer(); server.set_address("127.0.0.1"); server.set_service(sys.argv[1])
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch("( filesrc location=%s ! wavparse ! audioconvert ! audioresample ! audio/x-raw,rate=16000,channels=1 "
                   "! rtpL16pay name=pay0 pt=96 )" % sys.argv[2])
factory.set_shared(True)
server.get_session_pool().set_max_sessions(1)  # a camera that allows one RTSP session
server.get_mount_points().add_factory("/room", factory)
server.attach(None)
print("ready", flush=True)
GLib.MainLoop().run()
'''


class RtspAudioServer:
    """GStreamer's RTSP server (Debian's gir1.2-gst-rtsp-server-1.0 through python3-gi) serving two
    minutes of ``audio`` as 16 kHz L16 at rtsp://127.0.0.1:PORT/room, one session at a time."""

    def __init__(self, audio: Path, root: Path, *, start: bool = True) -> None:
        need(Path("/usr/bin/python3").exists() and subprocess.run(
            ["/usr/bin/python3", "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"],
            capture_output=True).returncode == 0,
            "GStreamer's RTSP server (gir1.2-gst-rtsp-server-1.0, python3-gi) is not installed")
        need(shutil.which("ffmpeg") is not None, "ffmpeg (Debian package ffmpeg) is not installed")
        import numpy as np
        import soundfile as sf

        y, sr = sf.read(audio, dtype="float32")  # (read as int16, a float WAV would come back as zeros)
        self.audio = root / f"speech-120s-{time.monotonic_ns()}.wav"
        sf.write(self.audio, np.tile(y, int(np.ceil(120 * sr / len(y)))), sr, subtype="PCM_16")  # it does not loop
        self.script = root / "rtsp_server.py"
        self.script.write_text(RTSP_SERVER)
        self.port = free_port()
        self.url = f"rtsp://127.0.0.1:{self.port}/room"
        self.log_path = root / f"rtsp-{self.port}.log"
        self._proc: subprocess.Popen | None = None
        if start:
            self.start()

    def start(self) -> None:
        """Start serving, and return once the server listens."""
        self._proc = subprocess.Popen(["/usr/bin/python3", str(self.script), str(self.port), str(self.audio)],
                                      stdout=subprocess.PIPE, stderr=open(self.log_path, "ab"))
        assert self._proc.stdout.readline().strip() == b"ready", self.log_path.read_text()
        wait_until_listening(self.port, proc=self._proc, what="GStreamer's RTSP server", log=self.log_path)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(5)


class Daemon:
    def __init__(self, url: str, tmp: Path, *extra: str, env: dict[str, str] | None = None, mdwe: bool = False) -> None:
        full = {k: v for k, v in os.environ.items() if not k.startswith("SER_STREAM_")}
        full.update({"SER_STREAM_STATE__DIRECTORY": str(tmp / "state"), "SER_STREAM_AUDIO__STALL_SECONDS": "3",
                     **(env or {})})
        self.err_path = tmp / f"daemon-{time.monotonic_ns()}.log"
        err = open(self.err_path, "wb")
        launch = [sys.executable, "-c", MDWE] if mdwe else [sys.executable, "-m", "ser_stream"]
        self.proc = subprocess.Popen([*launch, "run", "--input", url, "--format", "json", *extra],
                                     cwd=ROOT, env=full, stdout=subprocess.PIPE, stderr=err)
        err.close()
        self.lines: list[dict] = []
        threading.Thread(target=lambda: [self.lines.append(json.loads(x)) for x in self.proc.stdout], daemon=True).start()

    @property
    def log(self) -> str:
        return self.err_path.read_text()

    def wait_for(self, cond, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not cond():
            assert self.proc.poll() is None, self.log
            assert time.monotonic() < deadline, (self.log, len(self.lines), [(w["t"], w["level_dbfs"], w["speech"]) for w in self.lines[-5:]])
            time.sleep(0.1)

    def speech_since(self, n: int) -> bool:
        return any(w["speech"] for w in self.lines[n:])


@pytest.fixture(scope="module")
def speech_wav(long_wav: Path) -> Path:
    return long_wav  # 30 s of one actor's speech, 16 kHz float WAV


@pytest.mark.parametrize("mdwe", [False, True], ids=["plain", "deny-write-execute"])
def test_http_stream_with_a_server_restart(speech_wav: Path, tmp_path: Path, mdwe: bool):
    """Also under PR_SET_MDWE (the units' MemoryDenyWriteExecute=yes), which ffmpeg inherits."""
    need(not mdwe or mdwe_supported(), "this kernel has no PR_SET_MDWE (Linux 6.3 or later)")
    server = HttpAudioServer(speech_wav, tmp_path)
    url = server.url("cam:s3cret-pass@")  # the server ignores credentials; the daemon must never print them
    d = Daemon(url, tmp_path, mdwe=mdwe)
    try:
        d.wait_for(lambda: d.speech_since(0), 30)
        server.stop()  # the camera goes away
        d.wait_for(lambda: "reconnecting" in d.log, 20)
        time.sleep(2)
        n = len(d.lines)
        server.start()  # and comes back
        d.wait_for(lambda: d.speech_since(n) and "flows again" in d.log, 60)
    finally:
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(30) == 0, d.log
        server.stop()
    log = d.log
    assert "s3cret-pass" not in log and mask_url(url) in log
    assert not ffmpeg_pids(str(server.port))  # no ffmpeg left behind


def test_a_single_client_http_source_started_once_gives_speech_with_one_connection(speech_wav: Path, tmp_path: Path):
    """Issue 20: a camera that serves one client at a time, never restarted by anything but the test:
    speech within 10 s of start, and again after the server was killed and started once more. A probe
    connection before the reader (or two per reconnect) would take the only session."""
    server = HttpAudioServer(speech_wav, tmp_path, loop=False)
    d = Daemon(server.url(), tmp_path)
    try:
        start = time.monotonic()
        d.wait_for(lambda: d.speech_since(0), 10)
        assert time.monotonic() - start <= 10
        assert "one connection" in d.log
        server.stop()
        d.wait_for(lambda: "reconnecting" in d.log or "ended" in d.log, 20)
        n = len(d.lines)
        server.start()  # once: it serves the first connection that arrives, and only that one
        d.wait_for(lambda: d.speech_since(n), 40)
    finally:
        d.proc.send_signal(signal.SIGTERM)
        rc = d.proc.wait(30)
        server.stop()
    assert rc == 0, d.log
    assert server.starts == 2
    assert not ffmpeg_pids(str(server.port))


def test_rtsp_stream_from_a_gstreamer_server_with_a_restart(speech_wav: Path, tmp_path: Path):
    server = RtspAudioServer(speech_wav, tmp_path)
    d = Daemon(server.url, tmp_path)
    try:
        d.wait_for(lambda: d.speech_since(0), 40)
        server.stop()
        d.wait_for(lambda: "reconnecting" in d.log or "ended" in d.log, 30)
        n = len(d.lines)
        server.start()
        d.wait_for(lambda: d.speech_since(n) and "flows again" in d.log, 90)
    finally:
        d.proc.send_signal(signal.SIGTERM)
        rc = d.proc.wait(30)
        server.stop()
    assert rc == 0, d.log
    assert not ffmpeg_pids(f":{server.port}/room")


def test_sigkill_of_the_daemon_leaves_no_ffmpeg(speech_wav: Path, tmp_path: Path):
    server = HttpAudioServer(speech_wav, tmp_path)
    d = Daemon(server.url(), tmp_path)
    try:
        d.wait_for(lambda: len(ffmpeg_pids(f":{server.port}/")) >= 1 and d.lines, 30)
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(10)
        deadline = time.monotonic() + 10
        while ffmpeg_pids(f":{server.port}/") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not ffmpeg_pids(f":{server.port}/")  # PR_SET_PDEATHSIG took ffmpeg with it
    finally:
        server.stop()


@pytest.mark.parametrize("url, code, words", [
    ("http://user:pw-secret@127.0.0.1:{closed}/x.wav", 66, "unreachable"),
    ("ftp://127.0.0.1/x.wav", 78, "unsupported audio source scheme 'ftp'"),
    ("rtsp://", 78, "names no host"),
])
def test_bad_network_sources_fail_at_start_with_their_exit_code(url: str, code: int, words: str, tmp_path: Path):
    need(shutil.which("ffmpeg") is not None, "ffmpeg (Debian package ffmpeg) is not installed")
    url = url.format(closed=free_port())
    r = subprocess.run([sys.executable, "-m", "ser_stream", "run", "--input", url], cwd=ROOT, capture_output=True, text=True,
                       timeout=60, env={k: v for k, v in os.environ.items() if not k.startswith("SER_STREAM_")})
    assert r.returncode == code, r.stderr
    assert words in r.stderr and "pw-secret" not in r.stderr


def test_a_stream_without_audio_and_a_bad_url_in_the_config(tmp_path: Path):
    need(shutil.which("ffmpeg") is not None, "ffmpeg (Debian package ffmpeg) is not installed")
    video = tmp_path / "video.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=5",
                    "-t", "30", "-pix_fmt", "yuv420p", str(video)], check=True)
    port = free_port()
    srv = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-i", str(video), "-c", "copy", "-f", "mpegts",
                            "-listen", "1", f"http://127.0.0.1:{port}/cam.ts"], stderr=subprocess.DEVNULL)
    try:
        wait_until_listening(port, proc=srv, what="ffmpeg -listen")
        r = subprocess.run([sys.executable, "-m", "ser_stream", "run", "--input", f"http://127.0.0.1:{port}/cam.ts"],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert r.returncode == 69 and "no audio track" in r.stderr, r.stderr
    finally:
        srv.kill()
        srv.wait(5)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("audio:\n  url: gopher://me:hunter2@cam.lan/\n")
    r = subprocess.run([sys.executable, "-m", "ser_stream", "check-config", "-c", str(cfg)], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 78 and "audio" in r.stderr and "gopher" in r.stderr and "hunter2" not in r.stderr
    cfg.write_text("audio:\n  url: rtsp://me:hunter2@cam.lan/stream\n")
    r = subprocess.run([sys.executable, "-m", "ser_stream", "check-config", "-c", str(cfg)], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 0 and "rtsp://***:***@cam.lan/stream" in r.stdout and "hunter2" not in r.stdout + r.stderr


def test_ffmpeg_missing_is_a_clear_error(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SER_STREAM_")}
    env["PATH"] = str(tmp_path)  # no ffmpeg on it
    r = subprocess.run([sys.executable, "-m", "ser_stream", "run", "--input", "rtsp://me:pw@127.0.0.1:1/x"], cwd=ROOT,
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 69 and "ffmpeg is not installed (Debian: apt-get install ffmpeg)" in r.stderr
