"""A real audio device: PulseAudio null sink, a clip played with paplay, captured through sounddevice."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .conftest import ROOT
from .test_cli import check_window_line


def test_run_captures_speech_then_silence_from_a_pulse_device(pulse, wav48: Path, tmp_path: Path):
    err_path = tmp_path / "stderr.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SER_STREAM_")}
    env.update(pulse.env)
    env["SER_STREAM_STATE__DIRECTORY"] = str(tmp_path / "state")
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ser_stream", "run", "--device", "pulse", "--max-seconds", "12", "--format", "json"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err,
        )
        deadline = time.monotonic() + 20
        while b"capturing" not in err_path.read_bytes():
            assert proc.poll() is None, err_path.read_text()
            assert time.monotonic() < deadline, err_path.read_text()
            time.sleep(0.1)
        player = pulse.play(wav48)  # 48 kHz stereo original, about 3.5 s of speech
        assert player.wait(20) == 0
        out, _ = proc.communicate(timeout=30)
    log = err_path.read_text()
    assert proc.returncode == 0, log
    assert "capturing 'pulse'" in log
    windows = [json.loads(x) for x in out.decode().splitlines()]
    assert len(windows) == 10, log  # t = 3 .. 12
    for w in windows:
        check_window_line(w)
    speech = [w["speech"] for w in windows]
    assert any(speech), windows
    first = speech.index(True)
    last = len(speech) - 1 - speech[::-1].index(True)
    assert first <= 4  # the clip started right after capture began
    assert not any(speech[last + 1 :]) and len(speech) - last - 1 >= 3  # silence after the clip
    assert all(w["label"] is None for w in windows[last + 1 :])
    assert windows[-1]["level_dbfs"] <= -90.0
    # the microphone's adaptation statistics were kept: one window each for the speech windows heard
    with np.load(tmp_path / "state" / "adaptation.npz") as kept:
        assert float(kept["n"]) == sum(speech)
