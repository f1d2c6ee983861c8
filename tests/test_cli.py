"""The command line end to end, in subprocesses, on real RAVDESS audio."""

import json
import re
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from ser_stream.model import LABELS

from .conftest import cli

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def check_window_line(obj: dict) -> None:
    """One per-hop object exactly as docs/contracts.md says."""
    assert list(obj) == ["ts", "t", "speech", "label", "confidence", "probs", "mood", "level_dbfs", "arousal", "valence"]
    assert TS.match(obj["ts"])
    assert isinstance(obj["t"], float) and isinstance(obj["speech"], bool)
    assert isinstance(obj["level_dbfs"], float) and -100.0 <= obj["level_dbfs"] <= 0.0
    assert obj["mood"] in (*LABELS, "idle")
    if obj["speech"]:
        assert obj["label"] in LABELS
        assert list(obj["probs"]) == list(LABELS)
        assert abs(sum(obj["probs"].values()) - 1.0) < 2e-3
        assert obj["confidence"] == max(obj["probs"].values()) == obj["probs"][obj["label"]]
        assert -1.0 <= obj["arousal"] <= 1.0 and -1.0 <= obj["valence"] <= 1.0  # the default model's trained heads
    else:
        assert obj["label"] is None and obj["confidence"] is None and obj["probs"] is None
        assert obj["arousal"] is None and obj["valence"] is None


def lines(r) -> list[dict]:
    return [json.loads(x) for x in r.stdout.decode().splitlines()]


def test_run_fast_prints_one_contract_line_per_hop(long_wav: Path):
    r = cli("run", "--input", str(long_wav), "--fast")
    assert r.returncode == 0, r.stderr.decode()
    out = lines(r)
    assert len(out) == 28  # 30 s, 3 s windows, 1 s hops
    assert [o["t"] for o in out] == [float(t) for t in range(3, 31)]
    for o in out:
        check_window_line(o)
    assert sum(o["speech"] for o in out) >= 20
    assert "stream ended" in r.stderr.decode()  # logs go to stderr, data to stdout


def test_run_realtime_is_paced(clip: Path):
    import time

    t0 = time.monotonic()
    r = cli("run", "--input", str(clip))
    elapsed = time.monotonic() - t0
    assert r.returncode == 0, r.stderr.decode()
    assert len(lines(r)) == 1 and elapsed >= 3.0  # a 3.3 s clip takes its own length


def test_run_reads_wav_from_stdin(long_wav: Path):
    r = cli("run", "--input", "-", "--fast", "--max-seconds", "10", input=long_wav.read_bytes())
    assert r.returncode == 0, r.stderr.decode()
    assert len(lines(r)) == 8


def test_run_text_format_draws_a_live_view(clip: Path):
    r = cli("run", "--input", str(clip), "--fast", "--format", "text")
    assert r.returncode == 0
    text = r.stdout.decode()
    assert "dBFS" in text and "mood:" in text and "angry" in text and "█" in text


def test_classify_flac_and_48k_stereo_wav(clip: Path, wav48: Path):
    r = cli("classify", str(clip), str(wav48))
    assert r.returncode == 0, r.stderr.decode()
    out = lines(r)
    assert [o["file"] for o in out] == [str(clip), str(wav48)]
    for o in out:
        assert list(o) == ["file", "label", "confidence", "probs", "speech"]
        assert o["speech"] is True and o["label"] in LABELS and list(o["probs"]) == list(LABELS)
    assert out[0]["label"] == "angry"


def test_classify_windows(long_wav: Path):
    r = cli("classify", "--windows", str(long_wav))
    out = lines(r)
    assert r.returncode == 0 and len(out) == 28 and out[0]["t"] == 3.0


def test_missing_input_exits_66(tmp_path: Path):
    r = cli("run", "--input", str(tmp_path / "nope.wav"), "--fast")
    assert r.returncode == 66 and "nope.wav: no such file" in r.stderr.decode()
    r = cli("classify", str(tmp_path / "nope.flac"))
    assert r.returncode == 66 and "nope.flac" in r.stderr.decode()


def test_unreadable_and_empty_audio_exit_65(tmp_path: Path, clip: Path):
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF....this is not audio" * 10)
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    nosamples = tmp_path / "nosamples.wav"
    sf.write(nosamples, np.zeros(0, dtype=np.float32), 16000)
    for f in (junk, empty, nosamples):
        r = cli("run", "--input", str(f), "--fast")
        assert r.returncode == 65, (f, r.stderr.decode())
        assert str(f) in r.stderr.decode()
        assert r.stdout == b""


def test_truncated_audio_keeps_what_was_read_then_exits_65(tmp_path: Path, long_wav: Path, clip: Path):
    data = long_wav.read_bytes()
    wav = tmp_path / "cut.wav"
    wav.write_bytes(data[: len(data) // 2])  # header still claims 30 s
    r = cli("run", "--input", str(wav), "--fast")
    assert r.returncode == 65 and "truncated" in r.stderr.decode() and str(wav) in r.stderr.decode()
    n_read = (len(data) // 2 - 44) // 4  # float32 samples left after the 44-byte header
    assert len(lines(r)) == (n_read - 48000) // 16000 + 1  # what was there was analysed, nothing lost
    flac = tmp_path / "cut.flac"
    flac.write_bytes(clip.read_bytes()[:20000])
    r = cli("classify", str(flac), str(clip))
    assert r.returncode == 65 and str(flac) in r.stderr.decode()
    assert [o["file"] for o in lines(r)] == [str(clip)]  # the good file is still classified


def test_short_file_is_classified_once_padded_with_a_warning(tmp_path: Path, clip: Path):
    y, sr = sf.read(clip, dtype="float32")
    short = tmp_path / "short.wav"
    sf.write(short, y[sr // 2 : sr * 2], sr)  # 1.5 s
    r = cli("run", "--input", str(short), "--fast")
    assert r.returncode == 0
    out = lines(r)
    assert len(out) == 1 and out[0]["t"] == 1.5
    check_window_line(out[0])
    assert "shorter than one window" in r.stderr.decode()
    r = cli("classify", str(short))
    assert r.returncode == 0 and len(lines(r)) == 1 and "shorter than one window" in r.stderr.decode()


def test_bad_model_exits_78(tmp_path: Path, clip: Path):
    r = cli("run", "--input", str(clip), "--model", str(tmp_path / "none.npz"))
    assert r.returncode == 78 and "none.npz: model file not found" in r.stderr.decode()
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"corrupt")
    r = cli("classify", str(clip), "--model", str(bad))
    assert r.returncode == 78 and "bad.npz" in r.stderr.decode()


def test_usage_errors_exit_2(clip: Path):
    assert cli("run", "--bogus").returncode == 2
    assert cli("run", "--fast").returncode == 2
    assert cli().returncode == 2


def test_no_input_device_exits_69_with_a_hint(tmp_path: Path):
    # An ALSA configuration whose only device is a card that is not there: PortAudio finds no input.
    conf = tmp_path / "asound.conf"
    conf.write_text("pcm.!default { type hw card 7 }\n")
    env = {"ALSA_CONFIG_PATH": str(conf)}
    r = cli("devices", env=env, timeout=60)
    assert r.returncode == 0 and "no input devices found" in r.stdout.decode()
    r = cli("run", env=env, timeout=60)
    assert r.returncode == 69, r.stderr.decode()
    assert "default input device is unavailable" in r.stderr.decode() and "--input" in r.stderr.decode()
    r = cli("run", "--device", "no-such-microphone", timeout=60)
    assert r.returncode == 69 and "no-such-microphone" in r.stderr.decode()


def test_run_imports_neither_sklearn_nor_librosa(long_wav: Path):
    code = (
        "import sys, runpy; sys.argv = ['ser-stream', 'run', '--input', sys.argv[1], '--fast'];\n"
        "from ser_stream.cli import main\n"
        "rc = main()\n"
        "bad = [m for m in ('sklearn', 'librosa', 'numba', 'matplotlib', 'paho', 'scipy') if m in sys.modules]\n"
        "sys.stderr.write('HEAVY=%s\\n' % bad); sys.exit(rc)\n"
    )
    import subprocess

    # nor scipy: its pocketfft kernel is loaded on its own (ser_stream.fft), not through scipy.fft's 28 MB
    r = subprocess.run([sys.executable, "-c", code, str(long_wav)], capture_output=True, text=True)  # MQTT off
    assert r.returncode == 0 and "HEAVY=[]" in r.stderr


def test_classify_imports_neither_sklearn_nor_librosa_and_parallel_equals_serial(clip: Path, wav48: Path, long_wav: Path):
    import subprocess

    files = [str(clip), str(wav48), str(long_wav)]
    code = (
        "import sys\n"
        "from ser_stream.cli import main\n"
        "rc = main(['classify', '--jobs', sys.argv[1], *sys.argv[2:]])\n"
        "bad = [m for m in ('sklearn', 'librosa', 'numba', 'matplotlib') if m in sys.modules]\n"
        "sys.stderr.write('HEAVY=%s\\n' % bad); sys.exit(rc)\n"
    )
    outs = []
    for jobs in ("1", "2"):
        r = subprocess.run([sys.executable, "-c", code, jobs, *files], capture_output=True, text=True)
        assert r.returncode == 0 and "HEAVY=[]" in r.stderr, r.stderr
        outs.append(r.stdout)
    assert outs[0] == outs[1] and len(outs[0].splitlines()) == 3
