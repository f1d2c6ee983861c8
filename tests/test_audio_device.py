"""A real audio device: PulseAudio null sink, a clip played with paplay, captured through sounddevice."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from .conftest import MDWE, ROOT, mdwe_supported, need
from .test_cli import check_window_line


@pytest.mark.parametrize("mdwe", [False, True], ids=["plain", "deny-write-execute"])
def test_run_captures_speech_then_silence_from_a_pulse_device(pulse, wav48: Path, tmp_path: Path, mdwe: bool):
    need(not mdwe or mdwe_supported(), "this kernel has no PR_SET_MDWE (Linux 6.3 or later)")
    err_path = tmp_path / "stderr.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SER_STREAM_")}
    env.update(pulse.env)
    env["SER_STREAM_STATE__DIRECTORY"] = str(tmp_path / "state")
    launch = [sys.executable, "-c", MDWE] if mdwe else [sys.executable, "-m", "ser_stream"]
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(
            [*launch, "run", "--device", "pulse", "--max-seconds", "12", "--format", "json"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err,
        )
        deadline = time.monotonic() + 20
        while b"capturing" not in err_path.read_bytes():
            assert proc.poll() is None, err_path.read_text()
            assert time.monotonic() < deadline, err_path.read_text()
            time.sleep(0.1)
        player = pulse.play(wav48)  # 48 kHz stereo original, about 3.5 s of speech
        assert player.wait(20) == 0
        peak_kb = peak_rss_kb(proc.pid)  # the microphone path, model loaded and speech analysed
        out, _ = proc.communicate(timeout=30)
    log = err_path.read_text()
    assert proc.returncode == 0, log
    assert "capturing 'pulse'" in log
    # issue 12's budget: resident memory under 100 MB (91 MB measured; PortAudio's ALSA probing loads ~20 MB of plugins)
    assert peak_kb < 100 * 1024, f"peak resident memory {peak_kb} kB"
    windows = [json.loads(x) for x in out.decode().splitlines()]
    assert len(windows) == 10, log  # t = 3 .. 12
    for w in windows:
        check_window_line(w)
    last = speech_then_silence([w["speech"] for w in windows])
    assert all(w["label"] is None for w in windows[last + 1 :])
    assert windows[-1]["level_dbfs"] <= -90.0
    # the microphone's adaptation statistics were kept: the calmer half of the speech windows heard (by
    # the head's own arousal, which the JSON does not carry: tests/test_adaptation.py counts it exactly)
    with np.load(tmp_path / "state" / "adaptation.npz") as kept:
        assert 1 <= float(kept["n"]) <= sum(w["speech"] for w in windows)


def speech_then_silence(speech: list[bool]) -> int:
    """Assert a clip played right after capture began: speech within the first five windows, then at
    least three windows of silence to the end. Returns the index of the last speech window."""
    assert any(speech), speech
    last = len(speech) - 1 - speech[::-1].index(True)
    assert speech.index(True) <= 4, speech  # the clip started right after capture began
    assert len(speech) - last - 1 >= 3, speech  # silence after the clip
    return last


def peak_rss_kb(pid: int) -> int:
    """A live process's peak resident memory (VmHWM), kB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmHWM"].split()[0])


def _daemon(pulse, tmp_path: Path, *extra_env: tuple[str, str]) -> tuple[subprocess.Popen, Path]:
    err_path = tmp_path / "stderr.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SER_STREAM_")}
    env.update(pulse.env)
    env["SER_STREAM_STATE__DIRECTORY"] = str(tmp_path / "state")
    env.update(dict(extra_env))
    err = open(err_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "ser_stream", "run", "--device", "pulse", "--format", "json"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err)
    err.close()
    wait_for(lambda: b"capturing" in err_path.read_bytes(), proc, err_path, 20)
    return proc, err_path


def wait_for(cond, proc: subprocess.Popen, err_path: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        assert proc.poll() is None, err_path.read_text()
        assert time.monotonic() < deadline, err_path.read_text()
        time.sleep(0.1)


def pactl(pulse, *args: str) -> None:
    subprocess.run(["pactl", *args], env={**os.environ, **pulse.env}, check=True, capture_output=True)


def test_a_stalled_device_is_noticed_and_capture_resumes(pulse, wav48: Path, tmp_path: Path):
    """The sink suspended for 12 s: the monitor stays open but delivers nothing (a hung USB device)."""
    proc, err_path = _daemon(pulse, tmp_path)
    try:
        time.sleep(2)
        pactl(pulse, "suspend-sink", "sertest", "1")
        wait_for(lambda: b"no audio from 'pulse'" in err_path.read_bytes(), proc, err_path, 15)
        time.sleep(12 - 5)
        pactl(pulse, "suspend-sink", "sertest", "0")
        wait_for(lambda: b"flows again" in err_path.read_bytes(), proc, err_path, 40)
        assert pulse.play(wav48).wait(20) == 0
        time.sleep(4)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    log = err_path.read_text()
    assert proc.returncode == 0, log
    assert "the device stalled" in log and "reopened" in log
    windows = [json.loads(x) for x in out.decode().splitlines()]
    assert any(w["speech"] for w in windows[-8:]), log  # the clip played after the resume was heard


def test_an_unloaded_sink_comes_back(pulse, wav48: Path, tmp_path: Path):
    """The source disappears (module unloaded) and returns: the same process hears speech again."""
    proc, err_path = _daemon(pulse, tmp_path)
    try:
        time.sleep(2)
        out = subprocess.run(["pactl", "list", "short", "modules"], env={**os.environ, **pulse.env}, check=True,
                             capture_output=True, text=True).stdout
        module = next(line.split()[0] for line in out.splitlines() if "module-null-sink" in line)
        pactl(pulse, "unload-module", module)
        time.sleep(3)
        pactl(pulse, "load-module", "module-null-sink", "sink_name=sertest", "rate=48000", "channels=2")
        wait_for(lambda: err_path.read_text().count("reopened") >= 1 and b"flows again" in err_path.read_bytes(),
                 proc, err_path, 60)
        assert pulse.play(wav48).wait(20) == 0
        time.sleep(4)
    finally:
        proc.terminate()
        stdout, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, err_path.read_text()
    windows = [json.loads(x) for x in stdout.decode().splitlines()]
    assert any(w["speech"] for w in windows[-8:]), err_path.read_text()


def test_watchdog_stops_while_capture_is_dead_past_its_budget(pulse, tmp_path: Path):
    import socket

    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    proc, err_path = _daemon(pulse, tmp_path, ("NOTIFY_SOCKET", str(path)), ("WATCHDOG_USEC", "600000"),
                             ("SER_STREAM_AUDIO__STALL_SECONDS", "1"), ("SER_STREAM_AUDIO__WATCHDOG_BUDGET_SECONDS", "4"))
    received: list[tuple[float, str]] = []

    def collect(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                received.append((time.monotonic(), sock.recv(4096).decode()))
            except socket.timeout:
                pass

    try:
        collect(2)
        suspended = time.monotonic()
        pactl(pulse, "suspend-sink", "sertest", "1")
        collect(10)
        pactl(pulse, "suspend-sink", "sertest", "0")
        resumed = time.monotonic()
        collect(6)
    finally:
        pactl(pulse, "suspend-sink", "sertest", "0")
        proc.terminate()
        proc.communicate(timeout=30)
        sock.close()
    pings = [t for t, m in received if m == "WATCHDOG=1"]
    assert any(t < suspended for t in pings)  # fed while audio flows
    # the last audio came at `suspended`; after the 4 s budget (plus a margin) no ping until audio flows again
    assert not [t for t in pings if suspended + 4 + 1.0 < t < resumed], received
    assert any(t > resumed for t in pings), err_path.read_text()
    statuses = [m for _, m in received if m.startswith("STATUS=")]
    assert any("no audio from pulse" in m for m in statuses) and statuses[-1].startswith("STATUS=listening on")


def test_portaudio_reinitialisation_says_so_when_sounddevice_cannot(caplog):
    """The one use of sounddevice's private _terminate/_initialize: with the real module they run
    (test_an_unloaded_sink_comes_back relies on them); a sounddevice without them is logged, not fatal."""
    import types

    import sounddevice

    from ser_stream.capture.microphone import reinitialise_portaudio

    assert reinitialise_portaudio(sounddevice)
    assert sounddevice.query_devices() is not None  # PortAudio is usable again afterwards
    assert not reinitialise_portaudio(types.SimpleNamespace(__version__="9.9"))
    assert "cannot re-initialise PortAudio" in caplog.text
